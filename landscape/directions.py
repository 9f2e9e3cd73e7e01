"""Directions in weight space: random (filter-normalized), target (theta2 - theta*), and their HDF5 I/O.

Follows Li et al. 2018 as the reference implementation does it. A direction is a list of tensors, one per
perturbed tensor, in ``model.parameters()`` order (``dir_type='weights'``) or ``model.state_dict()`` order
(``dir_type='states'``, which also moves BN running statistics).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from landscape.errors import LandscapeError

NORMS = ("filter", "layer", "weight", "none")
IGNORES = ("biasbn", "none")
DIR_TYPES = ("weights", "states")

Direction = list  # list[torch.Tensor]


@dataclass
class Directions:
    """The plane of a surface: theta* + a*x + b*y, one tensor per perturbed tensor of the model.

    Attributes:
        names: the perturbed tensors' names, in ``dir_type`` order (``parameters()`` or ``state_dict()``).
        x, y: CPU float32 tensors, one per name (``y`` is ``None`` for a 1D curve).
        dir_type: ``weights`` or ``states``.
        source: how they were made, as the surface file records it: ``random``, ``file:NAME``,
            ``target:A[ | B]``, ``pca:RUN``.
        trajectory: for PCA directions, ``{"path", "epochs", "explained_variance_ratio"}``.
    """

    names: list[str]
    x: list[torch.Tensor]
    y: list[torch.Tensor] | None = None
    dir_type: str = "weights"
    source: str = "random"
    trajectory: dict | None = field(default=None)

    def __post_init__(self) -> None:
        self.x = [torch.as_tensor(d).float() for d in self.x]
        self.y = [torch.as_tensor(d).float() for d in self.y] if self.y is not None else None

    @property
    def two_d(self) -> bool:
        return self.y is not None

    def arrays(self) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
        """The directions as numpy arrays (for the HDF5 file and for sending between ranks)."""
        return [d.numpy() for d in self.x], ([d.numpy() for d in self.y] if self.y is not None else None)

    def check(self, model: nn.Module, where: str = "the directions") -> None:
        """Raise a one-line error unless they match ``model``'s perturbed tensors in count and shape."""
        names, tensors = perturbed_tensors(model, self.dir_type)
        for label, d in (("x", self.x), ("y", self.y)):
            if d is None:
                continue
            if len(d) != len(tensors):
                raise LandscapeError(f"{where}: the {label} direction has {len(d)} tensors but the model has "
                                     f"{len(tensors)} ({self.dir_type}); wrong architecture or --dir-type?")
            for i, (a, b) in enumerate(zip(d, tensors)):
                if tuple(a.shape) != tuple(b.shape):
                    raise LandscapeError(f"{where}: the {label} direction's tensor {i} has shape {tuple(a.shape)} "
                                         f"but {names[i]} is {tuple(b.shape)}; made for another architecture")

    @classmethod
    def of(cls, model: nn.Module, x: Direction, y: Direction | None = None, dir_type: str = "weights",
           source: str = "random", trajectory: dict | None = None) -> "Directions":
        """Directions over ``model``'s perturbed tensors (names taken from the model, shapes checked)."""
        names, _ = perturbed_tensors(model, dir_type)
        d = cls(names, list(x), list(y) if y is not None else None, dir_type, source, trajectory)
        d.check(model)
        return d


def perturbed_tensors(model: nn.Module, dir_type: str = "weights") -> tuple[list[str], list[torch.Tensor]]:
    """The live tensors a direction moves, and their names, in the order directions are stored.

    ``weights``: ``named_parameters()``. ``states``: every ``state_dict()`` entry (BN buffers included; the
    integer ``num_batches_tracked`` counters keep a zero direction).
    """
    if dir_type not in DIR_TYPES:
        raise LandscapeError(f"unknown direction type {dir_type!r}; valid: {', '.join(DIR_TYPES)}")
    if dir_type == "weights":
        items = list(model.named_parameters())
    else:
        items = list(model.state_dict(keep_vars=True).items())
    return [n for n, _ in items], [t for _, t in items]


def select_params(names: list[str], pattern: str | None) -> list[bool]:
    """Which tensors move under ``--params PATTERN``: comma-separated globs over the names (``*attn*``,
    ``transformer.h.0.*``), ``!GLOB`` to leave some out (``!*wte*,!*wpe*``: everything but the embeddings), or
    ``re:REGEX`` (searched in each name). ``None``: every tensor.

    Raises:
        LandscapeError: a bad regex, or a pattern that matches no tensor (with some of the names).
    """
    import fnmatch
    import re

    if pattern is None or not str(pattern).strip():
        return [True] * len(names)
    pattern = str(pattern).strip()
    if pattern.startswith("re:"):
        try:
            rx = re.compile(pattern[3:])
        except re.error as e:
            raise LandscapeError(f"--params {pattern!r}: bad regular expression ({e})")
        keep = [bool(rx.search(n)) for n in names]
    else:
        parts = [p.strip() for p in pattern.split(",") if p.strip()]
        take = [p for p in parts if not p.startswith("!")]
        drop = [p[1:] for p in parts if p.startswith("!")]
        keep = [(not take or any(fnmatch.fnmatchcase(n, g) for g in take)) and
                not any(fnmatch.fnmatchcase(n, g) for g in drop) for n in names]
    if not any(keep):
        shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
        raise LandscapeError(f"--params {pattern!r} matches none of the model's {len(names)} tensors ({shown}); "
                             "use globs over these names, '!GLOB' to leave some out, or re:REGEX")
    return keep


def only(direction: Direction | None, moving: list[bool]) -> Direction | None:
    """``direction`` with the tensors that must not move (``--params``) set to zero."""
    if direction is None:
        return None
    return [d if m else torch.zeros_like(d) for d, m in zip(direction, moving)]


def normalize_direction(d: torch.Tensor, w: torch.Tensor, norm: str = "filter") -> None:
    """Rescale ``d`` in place to the scale of ``w`` (Li et al. Sec. 4).

    ``filter``: each slice along dim 0 (a conv filter, a linear row) gets the norm of the same slice of ``w``:
    d_i <- d_i * ||w_i|| / (||d_i|| + 1e-10). ``layer``: the whole tensor likewise. ``weight``: d <- d * w.
    ``none``: unchanged.
    """
    if norm == "filter":
        dn = d.reshape(d.shape[0], -1).norm(dim=1)
        wn = w.reshape(w.shape[0], -1).norm(dim=1)
        d.mul_((wn / (dn + 1e-10)).view(-1, *([1] * (d.dim() - 1))))
    elif norm == "layer":
        d.mul_(w.norm() / d.norm())
    elif norm == "weight":
        d.mul_(w)
    elif norm != "none":
        raise LandscapeError(f"unknown normalization {norm!r}; valid: {', '.join(NORMS)}")


def random_direction(model: nn.Module, dir_type: str = "weights", norm: str = "filter", ignore: str = "biasbn",
                     generator: torch.Generator | None = None) -> Direction:
    """A Gaussian direction, normalized like the model's weights (on the CPU, float32, reproducible).

    Tensors with ``dim() <= 1`` (biases, BN gamma/beta/statistics) get zero with ``ignore='biasbn'`` and a copy
    of the weights with ``ignore='none'`` (the reference's behaviour). Integer buffers always get zero.
    """
    if ignore not in IGNORES:
        raise LandscapeError(f"unknown --ignore {ignore!r}; valid: {', '.join(IGNORES)}")
    if norm not in NORMS:
        raise LandscapeError(f"unknown normalization {norm!r}; valid: {', '.join(NORMS)}")
    _, tensors = perturbed_tensors(model, dir_type)
    out = []
    for w in tensors:
        w = w.detach().cpu()
        # Drawn for every tensor, ignored or not, so one tensor's treatment never shifts the next's numbers.
        d = torch.randn(w.shape, generator=generator, dtype=torch.float32)
        if not w.is_floating_point():
            d.zero_()
        elif w.dim() <= 1:
            if ignore == "biasbn":
                d.zero_()
            else:
                d.copy_(w)
        else:
            normalize_direction(d, w.float(), norm)
        out.append(d)
    return out


def target_direction(model: nn.Module, target: nn.Module, dir_type: str = "weights") -> Direction:
    """theta_target - theta*, unnormalized (1D interpolation between two models, the plane through three)."""
    names, a = perturbed_tensors(model, dir_type)
    names_b, b = perturbed_tensors(target, dir_type)
    if names != names_b or any(x.shape != y.shape for x, y in zip(a, b)):
        raise LandscapeError("--ckpt2/--ckpt3 must have the same architecture as --ckpt (parameter names/shapes "
                             "differ)")
    return [(y.detach().cpu().float() - x.detach().cpu().float()) if x.is_floating_point()
            else torch.zeros(x.shape) for x, y in zip(a, b)]


def make_directions(model: nn.Module, two_d: bool = True, seed: int = 123, norm: str = "filter",
                    ignore: str = "biasbn", dir_type: str = "weights", target2: nn.Module | None = None,
                    target3: nn.Module | None = None) -> tuple[Direction, Direction | None]:
    """The x (and y) directions for a surface.

    Random directions come from one CPU generator seeded with ``seed``: x is drawn first, then y, so the same
    seed gives bit-identical directions on any machine. ``target2`` / ``target3`` replace x / y by target
    directions.
    """
    g = torch.Generator().manual_seed(int(seed))
    x = target_direction(model, target2, dir_type) if target2 is not None else \
        random_direction(model, dir_type, norm, ignore, g)
    y = None
    if two_d:
        y = target_direction(model, target3, dir_type) if target3 is not None else \
            random_direction(model, dir_type, norm, ignore, g)
    return x, y


def load_directions(path: str, model: nn.Module, dir_type: str = "weights") -> tuple[Direction, Direction | None]:
    """Read x/y directions from our surface or direction file, or from a reference direction file.

    Checks the count, shapes and dtypes against ``model`` before reading a tensor, and its values after
    (:mod:`landscape.dirfile`), so a file made for another network, or a damaged one, fails clearly.
    """
    from landscape.dirfile import read_direction_file

    return read_direction_file(path, model, dir_type)


def pca_directions(final: nn.Module, snapshots: list[nn.Module], ignore: str = "biasbn"
                   ) -> tuple[Direction, Direction, list[float], list[tuple[float, float]]]:
    """Trajectory directions of Li et al. (Sec. 7): the top-2 principal components of theta_i - theta_final.

    The final model is a row of the matrix (a zero difference), as in the reference implementation, unless a
    snapshot already equals it: leaving it out changes the centring, so the directions would differ from the
    reference's whenever the final model is not also a snapshot.

    Args:
        final: the final model (the centre of the plot).
        snapshots: models along the optimization path (e.g. every epoch), in order.
        ignore: ``biasbn`` zeroes biases and BN parameters in the differences (as the reference does).

    Returns:
        ``(x, y, explained_variance_ratio[2], path)``: unit-norm, orthogonal directions in ``parameters()``
        order, the fraction of the differences' variance each explains (after centring, as sklearn's PCA), and
        each row's coordinates (its difference projected on x and y): the snapshots', then the final model's
        (0, 0) when it was added.
    """
    if len(snapshots) < 2:
        raise LandscapeError(f"a trajectory needs at least 2 snapshots besides the final model; got {len(snapshots)}"
                             " (train with --save-every N)")
    params = [p.detach().cpu().double() for p in final.parameters()]
    keep = [p.dim() > 1 or ignore != "biasbn" for p in params]
    rows = []
    for m in snapshots:
        ps = [p.detach().cpu().double() for p in m.parameters()]
        if len(ps) != len(params) or any(a.shape != b.shape for a, b in zip(ps, params)):
            raise LandscapeError("trajectory snapshots must have the same architecture as the final model")
        rows.append(torch.cat([(a - b).reshape(-1) if k else torch.zeros(b.numel(), dtype=torch.float64)
                               for a, b, k in zip(ps, params, keep)]))
    if not any(bool((r == 0).all()) for r in rows):
        rows.append(torch.zeros_like(rows[0]))  # the final model itself
    m_ = torch.stack(rows)  # (snapshots [+ final], P)
    centred = m_ - m_.mean(0, keepdim=True)
    # Economy SVD of the small Gram-sized problem: the right singular vectors are the principal axes.
    u, s, vt = torch.linalg.svd(centred, full_matrices=False)
    var = s ** 2
    ratio = (var[:2] / var.sum()).tolist() if float(var.sum()) > 0 else [0.0, 0.0]
    axes = vt[:2]
    # A fixed sign (largest-magnitude entry positive) so the same snapshots always give the same plot.
    for i in range(axes.shape[0]):
        j = int(torch.argmax(axes[i].abs()))
        if axes[i, j] < 0:
            axes[i] = -axes[i]
    path = [(float(r @ axes[0]), float(r @ axes[1])) for r in m_]

    def unflatten(v: torch.Tensor) -> Direction:
        out, o = [], 0
        for p in params:
            out.append(v[o:o + p.numel()].reshape(p.shape).float())
            o += p.numel()
        return out

    return unflatten(axes[0]), unflatten(axes[1]), ratio, path


def save_directions(path: str, directions, model: nn.Module | None = None) -> str:
    """Write ``directions`` (a :class:`Directions`, or regenerable ones, rebuilt tensor by tensor: never all in
    memory) in the reference's direction-file format: groups ``xdirection``/``ydirection`` of datasets
    ``"0".."N-1"`` (float32, ``dir_type`` order), attribute ``names``. Written under a temporary name and renamed.

    Returns:
        ``path``.
    """
    import h5py

    from landscape.paths import atomic_path
    from landscape.seeded import ZERO, SeededDirections

    seeded = isinstance(directions, SeededDirections)
    weights = perturbed_tensors(model, directions.dir_type)[1] if model is not None else None
    axes = (("xdirection", 0),) + ((("ydirection", 1),) if directions.y is not None else ())
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for group, axis in axes:
                g = f.create_group(group)
                g.attrs["names"] = np.array([str(n) for n in directions.names], dtype=h5py.string_dtype())
                for i, name in enumerate(directions.names):
                    if not seeded:
                        t = (directions.x if axis == 0 else directions.y)[i]
                    elif directions.plans[i].kind == ZERO:
                        t = torch.zeros(directions.plans[i].shape)
                    else:
                        p = directions.plans[i]
                        theta = weights[i].detach().cpu() if weights is not None else None
                        t = directions.chunk(i, axis, 0, p.rows, torch.device("cpu"), theta)
                    g.create_dataset(str(i), data=np.asarray(t.detach().cpu().float().numpy(), dtype=np.float32))
    return path
