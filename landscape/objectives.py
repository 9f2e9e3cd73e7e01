"""What a batch costs: the surface's loss (and accuracy) from the model and one batch, whatever either looks like.

Three kinds, decided once before the first point (:func:`resolve_objective`, then :meth:`Objective.probe`):

* ``loss``: ``loss(output, targets)`` (:mod:`landscape.losses`) on the model's output: a tensor, or the
  ``logits`` of a dict / HuggingFace ``ModelOutput`` / tuple (its first tensor). The default when the output
  carries no loss of its own, and whenever ``loss=`` is given.
* ``model``: the model's own loss, when its output carries one (a HuggingFace model given ``labels``) and no
  ``loss=`` was asked for. It is a batch mean; each batch is weighted so that the surface equals the model's own
  loss over the whole data set: by its number of samples, or, for token labels (B, T), by its number of
  non-ignored label tokens (after the causal shift by one for a language model that shifts its labels; which
  applies is found by matching the model's loss against both at theta*, and recorded as ``loss_weighting``).
* ``objective``: ``fn(model, batch)`` for losses that need the model and the batch, with no targets (a PINN, an
  autoencoder, a contrastive or diffusion objective). It receives the batch as the user gave it and returns
  per-sample losses ``(B,)`` (per-element ``(B, ...)`` values are averaged) or their mean. It runs with
  autograd enabled (a PINN differentiates with respect to its inputs) and the parameters frozen, so nothing is
  recorded for them.

Each batch becomes a row of sums (:data:`COLUMNS`) that :mod:`landscape.sampling` turns into the mean, its
standard error and the accuracy.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from landscape import batching
from landscape.errors import LandscapeError
from landscape.losses import IGNORE_INDEX, Loss, LossSpec, Units, class_dim, is_class_labels, resolve_loss
from landscape.settings import qualified_name

# The sums every point keeps (float64, on the device): loss, loss^2, correct, weight, weight^2, loss*weight,
# correct^2, correct*weight, each summed over units (samples, or batches for a loss given only as a mean).
COLUMNS = ("sum", "sumsq", "correct", "weight", "wsq", "lw", "csq", "cw")
SUM, SUMSQ, CORRECT, WEIGHT, WSQ, LW, CSQ, CW = range(len(COLUMNS))
ObjectiveFn = Callable[[nn.Module, Any], torch.Tensor]
PROBE_SAMPLES = 2  # what a probe runs through the model (more only to find a label that is not ignored)


def output_loss(out: Any) -> torch.Tensor | None:
    """The loss a model's output carries (``out.loss`` / ``out["loss"]``), or ``None``."""
    if isinstance(out, Mapping):
        v = out.get("loss")
    else:
        v = getattr(out, "loss", None) if not isinstance(out, (torch.Tensor, tuple, list)) else None
    return v if isinstance(v, torch.Tensor) else None


def output_logits(out: Any) -> torch.Tensor:
    """The tensor a loss is applied to: the output itself, its ``logits``, or its first tensor (not its loss)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, Mapping):
        if isinstance(out.get("logits"), torch.Tensor):
            return out["logits"]
        found = [v for k, v in out.items() if k != "loss" and isinstance(v, torch.Tensor)]
    elif isinstance(out, (tuple, list)):
        found = [v for v in out if isinstance(v, torch.Tensor)]
    else:
        logits = getattr(out, "logits", None)
        found = [logits] if isinstance(logits, torch.Tensor) else []
    if not found:
        raise LandscapeError(f"the model returns a {type(out).__name__} holding no tensor to apply a loss to; return "
                             "the logits (a tensor, a dict with 'logits', or a tuple whose first item is them), or "
                             "pass objective=fn(model, batch)")
    return found[0]


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Autograd on, the parameters out of it: an objective may differentiate with respect to its inputs, and
    nothing is recorded for the weights."""
    moving = [p for p in model.parameters() if p.requires_grad]
    for p in moving:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            yield
    finally:
        for p in moving:
            p.requires_grad_(True)


@dataclass
class Objective:
    """The surface's loss for one model and one kind of batch (see the module docstring).

    Attributes:
        name: what the surface file records as ``loss``: ``cross_entropy``/``mse``/``nll``, a callable's
            ``module.qualname``, ``model`` (the model's own loss), or ``objective:module.qualname``.
        kind: ``loss``, ``model`` or ``objective``.
        loss: the loss (kind ``loss``).
        fn: the objective (kind ``objective``).
        explicit: the user asked for this loss (kind ``loss``), rather than it being the default.
        accuracy, weighted, per_sample, shift, weighting: found by :meth:`probe`: whether accuracy is counted,
            whether units carry weights (token losses), whether units are samples (else batches), the causal
            shift of the model's own token loss, and how the surface is averaged (recorded as
            ``loss_weighting``).
    """

    name: str
    kind: str
    loss: Loss | None = None
    fn: ObjectiveFn | None = None
    explicit: bool = False
    accuracy: bool = False
    weighted: bool = False
    per_sample: bool = True
    shift: int = 0
    weighting: str = "mean over samples"
    tensor_output: bool = True

    @property
    def vmappable(self) -> bool:
        """The batched (vmap) engine can evaluate it: a loss on a tensor output."""
        return self.kind == "loss" and self.tensor_output

    def plain_loss(self, data, flag: str) -> Loss:
        """The loss ``fn(output, target)`` for code that takes only that (the Hessian's), or a one-line error
        naming ``flag`` when this surface's data, output or objective is another kind."""
        if self.kind != "loss" or self.weighted or data.layout != "pair" or \
                not isinstance(data.x, torch.Tensor) or not self.tensor_output:
            raise LandscapeError(f"{flag} takes (inputs, targets) tensors, a model returning a tensor and a "
                                 "per-sample loss; this surface's data, model output or objective is another kind; "
                                 f"drop {flag}")
        return self.loss

    # -- one batch ---------------------------------------------------------------------------------------------
    def units(self, net: Callable, x: Any, y: Any, layout: str) -> Units:
        """One batch's per-unit values (:class:`~landscape.losses.Units`)."""
        if self.kind == "objective":
            with frozen(net) if isinstance(net, nn.Module) else contextlib.nullcontext():
                v = self.fn(net, batching.join_batch(x, y, layout))
            return _objective_units(v, batching.length(x), self.name)
        out = batching.call_model(net, x)
        targets = batching.targets_of(x, y, layout)
        if self.kind == "model":
            return self._model_units(out, targets, batching.length(x))
        return self.loss.units(output_logits(out), targets, self.accuracy)

    def mean(self, net: Callable, x: Any, y: Any, layout: str) -> torch.Tensor:
        """One batch's loss as a differentiable scalar, weighted as the surface's mean is (for training: the
        bend of a curve between two solutions, :mod:`landscape.connect`)."""
        if self.kind == "objective":
            v = self.fn(net, batching.join_batch(x, y, layout))
            return v if v.dim() == 0 else v.reshape(v.shape[0], -1).mean(1).mean()
        u = self.units(net, x, y, layout)
        return u.loss.sum() / (u.weight.sum() if u.weight is not None else len(u.loss))

    def moments(self, net: Callable, x: Any, y: Any, layout: str) -> torch.Tensor:
        """One batch's row of sums (:data:`COLUMNS`), float64, left on the device."""
        return unit_sums(self.units(net, x, y, layout))

    def _model_units(self, out: Any, labels: Any, b: int) -> Units:
        m = output_loss(out)
        if m is None:
            raise LandscapeError("the model returned no loss for this batch; give every batch its labels")
        if m.dim() == 1 and m.shape[0] == b:  # per-sample losses
            return Units(m.double())
        m = m.double().reshape(())
        correct = None
        if self.weighted:
            logits, labels = self._shifted(output_logits(out), labels)
            keep = labels != IGNORE_INDEX
            w = keep.sum().double()
            if self.accuracy:
                correct = ((logits.argmax(-1) == labels) & keep).sum().double().reshape(1)
            return Units((m * w).reshape(1), w.reshape(1), correct, per_sample=False, ratio=True)
        if self.accuracy:
            correct = (output_logits(out).argmax(1) == labels).sum().double().reshape(1)
        w = torch.full((1,), float(b), dtype=torch.float64, device=m.device)
        return Units((m * b).reshape(1), w, correct, per_sample=False)

    def _shifted(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.shift:
            return logits[:, :-1], labels[:, 1:]
        return logits, labels

    # -- before the first point --------------------------------------------------------------------------------
    def probe(self, net: nn.Module, data) -> None:
        """Run a few samples through the model and the objective: a clear error now instead of at the first
        point, and the settings that depend on the output (accuracy, weights, the causal shift).

        Raises:
            LandscapeError: the model fails on the data, the output or the loss does not fit the targets, the
                data has no targets for a loss, or the model's own loss cannot be weighted.
        """
        x, y = next(data.batches(probe_size(data)))
        targets = batching.targets_of(x, y, data.layout)
        if self.kind == "objective":
            try:
                self.per_sample = self.units(net, x, y, data.layout).per_sample
            except LandscapeError:
                raise
            except Exception as e:  # noqa: BLE001 - the user's objective can raise anything
                raise LandscapeError(f"objective {self.name[len('objective:'):]!r} fails on a batch "
                                     f"({batching.describe(x)}): {type(e).__name__}: {first_line(e)}") from e
            self.weighting = "mean over samples" + ("" if self.per_sample else " (batch means weighted by size)")
            return
        try:
            with torch.no_grad():
                out = batching.call_model(net, x)
        except Exception as e:  # noqa: BLE001 - a user's model can raise anything on the wrong input
            raise LandscapeError(f"the model fails on the data (inputs {batching.describe(x)}): {type(e).__name__}:"
                                 f" {first_line(e)}; pass data the model accepts") from e
        self.tensor_output = isinstance(out, torch.Tensor)
        own = output_loss(out)
        if self.kind == "loss" and not self.explicit and own is not None:
            self.kind, self.name, self.loss = "model", "model", None
        if self.kind == "model":
            self._probe_model_loss(out, own, targets, data)
            return
        self._probe_loss(out, targets, data, own)

    def _probe_loss(self, out: Any, targets: Any, data, own: torch.Tensor | None) -> None:
        if targets is None:
            raise LandscapeError(f"the data holds inputs only ({batching.describe(data.x)}), so loss "
                                 f"{self.loss.name!r} has no targets; pass objective=fn(model, batch) (--objective "
                                 "MODULE:FN) for a loss without targets, or (inputs, targets) data")
        logits = output_logits(out)
        self.loss.check(logits, data.targets)
        tokens = self.loss.tokens(logits, targets)
        try:
            units = self.loss.units(logits, targets, accuracy=False)
        except LandscapeError:
            raise
        except Exception as e:  # noqa: BLE001 - same: a user's loss can raise anything
            raise LandscapeError(f"loss {self.loss.name!r} fails on the model's output (shape {tuple(logits.shape)}) "
                                 f"and targets ({batching.describe(targets)}, {str(targets.dtype)[6:]}): "
                                 f"{type(e).__name__}: {first_line(e)}{self._hint(logits, targets)}") from e
        self.per_sample = units.per_sample
        self.weighted = tokens
        self.accuracy = tokens or (is_class_labels(targets) and logits.dim() == 2 and logits.shape[1] > 1)
        if tokens:
            self.weighting = f"mean over non-ignored target tokens (ignore_index {IGNORE_INDEX})"
        elif not self.per_sample:
            self.weighting = "mean over samples (batch means weighted by size)"
        if own is not None and self.loss.name in ("cross_entropy", "nll"):
            ours = float(units.loss.sum() / (units.weight.sum() if units.weight is not None else len(units.loss)))
            theirs = float(own.detach().double().mean())
            if not math.isclose(ours, theirs, rel_tol=1e-4, abs_tol=1e-6):
                raise LandscapeError(f"loss={self.loss.name!r} on the model's logits and labels gives {ours:.6g} at "
                                     f"theta*, but the model's own loss is {theirs:.6g} (a causal language model "
                                     "shifts its labels by one); drop loss= to use the model's own loss, or pass "
                                     "objective=fn(model, batch)")

    def _hint(self, logits: torch.Tensor, targets: Any) -> str:
        """What to pass instead, fitted to the case (never the loss that was just given)."""
        if logits.dim() > 2 and isinstance(targets, torch.Tensor) and not targets.is_floating_point():
            return ("; for a sequence or segmentation output give integer targets shaped like the output without "
                    "its class dimension (e.g. (B, T) token ids, -100 where ignored)")
        if self.loss.name != "mse" and isinstance(targets, torch.Tensor) and targets.is_floating_point():
            return "; use loss='mse' or a callable for regression targets"
        return "; pass a callable loss=fn(output, target) or objective=fn(model, batch)"

    def _probe_model_loss(self, out: Any, own: torch.Tensor | None, labels: Any, data) -> None:
        if own is None:
            raise LandscapeError("the model's output carries no loss on this data; give the batches 'labels', or "
                                 "pass loss= (e.g. 'cross_entropy') or objective=fn(model, batch)")
        if own.dim() == 1 and own.shape[0] == batching.length(data.x if labels is None else labels):
            self.weighting = "mean over samples (the model's per-sample losses)"
            return
        if own.numel() != 1:
            raise LandscapeError(f"the model's own loss has shape {tuple(own.shape)}; it must be the batch mean or "
                                 "per-sample values; pass objective=fn(model, batch)")
        self.per_sample = False
        token_labels = isinstance(labels, torch.Tensor) and labels.dim() >= 2 and not labels.is_floating_point()
        if not token_labels:
            self.accuracy = is_class_labels(labels) and _class_logits(out, labels)
            self.weighting = "mean over samples (the model's batch means weighted by size)"
            return
        self.weighted = True
        logits = output_logits(out).float()
        theirs = float(own.double())
        found = {}
        for shift in (1, 0):
            lg, lb = (logits[:, :-1], labels[:, 1:]) if shift else (logits, labels)
            if class_dim(lg, lb) == -1 and bool((lb != IGNORE_INDEX).any()):
                found[shift] = float(F.cross_entropy(lg.reshape(-1, lg.shape[-1]), lb.reshape(-1),
                                                     ignore_index=IGNORE_INDEX))
                if math.isclose(found[shift], theirs, rel_tol=1e-4, abs_tol=1e-6):
                    self.shift = shift
                    self.accuracy = True
                    self.weighting = ("mean over non-ignored label tokens" +
                                      (", labels shifted by one (causal language model)" if shift else ""))
                    return
        seen = ", ".join(f"{v:.6g} {'shifted by one' if k else 'unshifted'}" for k, v in found.items())
        raise LandscapeError(f"the model's own loss ({theirs:.6g}) is not the token cross-entropy of its logits and "
                             f"labels ({seen or 'no comparable logits'}), so it cannot be weighted by tokens; pass "
                             "objective=fn(model, batch) returning per-sample losses")


def _class_logits(out: Any, labels: torch.Tensor) -> bool:
    try:
        logits = output_logits(out)
    except LandscapeError:
        return False
    return logits.dim() == 2 and logits.shape[0] == labels.shape[0] and logits.shape[1] > 1


def _objective_units(v: Any, b: int, name: str) -> Units:
    if not isinstance(v, torch.Tensor):
        raise LandscapeError(f"{name} returned a {type(v).__name__}, not a tensor; return per-sample losses (shape "
                             "(B,)) or their mean")
    v = v.detach()
    if v.dim() == 0:
        return Units((v.double() * b).reshape(1), torch.full((1,), float(b), dtype=torch.float64,
                                                             device=v.device), per_sample=False)
    if v.shape[0] != b:
        raise LandscapeError(f"{name} returned shape {tuple(v.shape)} for a batch of {b}; return per-sample losses "
                             "(shape (B,)) or their mean")
    return Units(v.reshape(b, -1).double().mean(1))


def unit_sums(u: Units) -> torch.Tensor:
    """A batch's :class:`~landscape.losses.Units` -> its row of :data:`COLUMNS`, summed over the last dimension
    (units of shape (U,) give a row; (K, U), one per point of the batched engine, give K rows).

    Units whose weights only count samples (1 per sample; ``b`` for a batch mean ``m`` of ``b`` samples, whose
    loss is ``b m``) keep the sums the unweighted standard error uses: ``sumsq`` is ``l^2`` per sample, ``b m^2``
    per batch mean. Token-weighted units (``ratio``) keep ``l^2`` for the ratio estimator's.
    """
    l = u.loss
    w = u.weight if u.weight is not None else torch.ones_like(l)
    c = u.correct if u.correct is not None else torch.zeros_like(l)
    sq = l * l if u.per_sample or u.ratio else l * l / w
    return torch.stack([v.sum(-1) for v in (l, sq, c, w, w * w, l * w, c * c, c * w)], -1)


def resolve_objective(loss: LossSpec | None = None, objective: ObjectiveFn | str | None = None) -> Objective:
    """The user's ``loss=`` / ``objective=`` -> an :class:`Objective` (to :meth:`~Objective.probe` next).

    Raises:
        LandscapeError: both given, an objective that is not callable or cannot be imported, an unknown loss.
    """
    if objective is not None:
        if loss is not None:
            raise LandscapeError("pass either loss= (applied to the model's output and the targets) or objective= "
                                 "(computes the loss from the model and the batch), not both")
        fn = import_objective(objective) if isinstance(objective, str) else objective
        if not callable(fn):
            raise LandscapeError(f"objective must be a callable fn(model, batch); got {type(fn).__name__}")
        return Objective(f"objective:{objective if isinstance(objective, str) else qualified_name(fn)}",
                         "objective", fn=fn)
    resolved = resolve_loss(loss)
    return Objective(resolved.name, "loss", loss=resolved, explicit=loss is not None)


def import_objective(spec: str) -> ObjectiveFn:
    """``--objective MODULE:FN`` (an import path or a ``.py`` file) -> the function."""
    from landscape.models.external import import_callable

    module, sep, attr = str(spec).rpartition(":")
    if not sep or not module or not attr:
        raise LandscapeError(f"bad --objective {spec!r}; pass MODULE:FN, e.g. my_losses.py:pinn_residual or "
                             "mypkg.losses:reconstruction")
    return import_callable(module, attr, "--objective")


def probe_objective(model: nn.Module, data, objective: Objective) -> None:
    """:meth:`Objective.probe` on the caller's model, leaving it exactly as it came in: a few samples moved to its
    device, in eval mode (each module's training flag restored after), under ``no_grad`` (an objective: frozen
    parameters), so no weight, buffer or flag changes."""
    device = next((t.device for t in model.parameters()), torch.device("cpu"))
    probe = data.head(probe_size(data)).to(device)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        objective.probe(model, probe)
    finally:
        for m, mode in modes:
            m.training = mode


def probe_size(data) -> int:
    """Samples a probe runs: :data:`PROBE_SAMPLES`, or as many as it takes (up to 4,096) for a label that is not
    ignored (a token loss cannot be matched on prompts alone)."""
    labels = data.targets
    n = min(PROBE_SAMPLES, len(data))
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dim() < 2:
        return n
    head = labels[data.order[:4096].to(labels.device)] if data.order is not None else labels[:4096]  # read order
    keep = (head != IGNORE_INDEX).flatten(1).any(1)
    first = int(keep.nonzero()[0]) + 1 if bool(keep.any()) else n
    return max(n, min(first, len(data)))


def first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:200]
