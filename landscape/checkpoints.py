"""Loading and saving checkpoints, safe by default (timm-style unwrapping, ``weights_only`` loading).

Accepted inputs (DESIGN section 3): a bare state_dict; a dict holding it under ``state_dict`` / ``model`` /
``model_state_dict`` / ``net`` (with optional ``arch``, ``epoch``, ``acc``); the zip and the legacy (pre-1.6)
``torch.save`` formats; ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes; state_dicts
without ``num_batches_tracked`` (old PyTorch). Anything that needs code execution to unpickle, such as a whole
pickled model, is refused unless the caller passes ``trust=True`` (``--trust-checkpoint``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from collections import OrderedDict
from typing import Any

import torch
import torch.nn as nn

from landscape.errors import LandscapeError
from landscape.models import canonical_name, create_model
from landscape.paths import atomic_open, write_error

STATE_KEYS = ("state_dict", "model", "model_state_dict", "net")
PREFIXES = ("module.", "_orig_mod.")


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file, recorded in surface files so a resumed run can tell the checkpoint changed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_checkpoint_file(path: str, trust: bool = False) -> Any:
    """The raw object stored in a checkpoint file, loaded safely (``weights_only``) unless ``trust``.

    Raises:
        LandscapeError: missing, empty, truncated or corrupt files, and files that need code execution.
    """
    if not os.path.exists(path):
        raise LandscapeError(f"checkpoint not found: {path!r}; pass the path of a .pt/.pth/.t7 file")
    if os.path.isdir(path):
        raise LandscapeError(f"checkpoint {path!r} is a directory; pass a checkpoint file inside it")
    if os.path.getsize(path) == 0:
        raise LandscapeError(f"checkpoint {path!r} is empty (0 bytes); re-copy or re-save it")
    try:
        if trust:
            return torch.load(path, map_location="cpu", weights_only=False)
        # numpy scalars (e.g. an ``acc`` saved as np.float64 by old training scripts) are data, not code.
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if trust or not found:
            raise LandscapeError(
                f"checkpoint {path!r} is not a readable torch checkpoint (truncated or corrupt?): {_first_line(e)}"
            )
        # The weights-only unpickler refuses globals it does not know (a whole pickled nn.Module, or a payload
        # that would run code) and raises before executing anything, so nothing ran.
        raise LandscapeError(
            f"checkpoint {path!r} needs code execution to load (it references {found.group(1)}); refused "
            "without running anything. If you trust its author, re-run with --trust-checkpoint "
            "(Python: trust=True), or re-save it as a plain state_dict"
        )
    except Exception as e:  # noqa: BLE001 - untrusted bytes: whatever torch.load trips on is the file's fault
        raise LandscapeError(
            f"checkpoint {path!r} is not a readable torch checkpoint (truncated or corrupt?): {_first_line(e)}"
        )


def _numpy_safe_globals() -> list:
    import numpy as np

    try:
        from numpy._core.multiarray import scalar  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]
    dtype_classes = [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    return [scalar, np.dtype, *dtype_classes]


def _first_line(e: BaseException) -> str:
    """The informative line of an exception (torch's weights-only errors bury it under advice)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    key = next((ln for ln in lines if "GLOBAL" in ln or "Unsupported" in ln), lines[0] if lines else "")
    key = re.sub(r"\x1b\[[0-9;]*m", "", key)
    return f"{type(e).__name__}: {key}"[:300]


def extract_state_dict(obj: Any) -> tuple[OrderedDict, dict]:
    """Find the state_dict inside a loaded checkpoint object.

    Returns:
        ``(state_dict, meta)``: tensors with ``module.``/``_orig_mod.`` prefixes stripped, and the remaining
        top-level metadata (``arch``, ``epoch``, ``acc``, ...).
    """
    meta: dict = {}
    if isinstance(obj, nn.Module):
        sd = obj.state_dict()
    elif isinstance(obj, dict):
        sd = None
        for k in STATE_KEYS:
            if k in obj and isinstance(obj[k], (dict, nn.Module)):
                sd = obj[k].state_dict() if isinstance(obj[k], nn.Module) else obj[k]
                meta = {mk: mv for mk, mv in obj.items() if mk != k}
                break
        if sd is None:
            sd = obj
    else:
        raise LandscapeError(f"checkpoint holds a {type(obj).__name__}, not a state_dict or a dict holding one")
    tensors = OrderedDict()
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        for p in PREFIXES:
            while k.startswith(p):
                k = k[len(p):]
        tensors[k] = v
    if not tensors:
        raise LandscapeError(
            f"no tensors found in the checkpoint (top-level keys: {sorted(map(str, obj))[:10]}); "
            f"expected a state_dict or a dict with one of {list(STATE_KEYS)}"
        )
    return tensors, meta


def _guess_shape(sd: dict) -> tuple[int, int]:
    """(num_classes, in_channels) from the classifier and the stem's weights."""
    head = sd.get("linear.weight", sd.get("fc.weight"))
    stem = sd.get("conv1.weight")
    num_classes = int(head.shape[0]) if head is not None else 10
    in_channels = int(stem.shape[1]) if stem is not None and stem.dim() == 4 else 3
    return num_classes, in_channels


def load_into(model: nn.Module, sd: dict, source: str = "checkpoint") -> None:
    """Load ``sd`` into ``model`` strictly, tolerating only missing ``num_batches_tracked`` (old PyTorch).

    Raises:
        LandscapeError: listing missing / unexpected keys and shape mismatches.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:8])}"
                         f"{' ...' if len(unexpected) > 8 else ''}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:4])}")
        arch = getattr(model, "arch", type(model).__name__)
        raise LandscapeError(f"{source} does not match architecture {arch!r}: {' | '.join(parts)}; "
                             "check --arch (e.g. resnet56 vs plain56 / resnet56_noshort)")
    full = {k: (sd[k] if k in sd else own[k]) for k in own}
    model.load_state_dict(full, strict=True)


def load_checkpoint(path: str, arch: str | None = None, trust: bool = False,
                    num_classes: int | None = None) -> tuple[nn.Module, dict]:
    """Load a checkpoint file into a freshly built model.

    Args:
        path: checkpoint file (any format of DESIGN section 3).
        arch: registry name; optional when the checkpoint records ``arch`` (ours do).
        trust: allow full unpickling (code execution). Only for files from trusted authors.
        num_classes: expected classifier size; default: read from the checkpoint.

    Returns:
        ``(model, info)``: the model in eval mode on the CPU; ``info`` holds ``arch``, ``num_classes``,
        ``in_channels``, ``sha256``, ``path`` and any stored metadata (``epoch``, ``acc``, ``dataset``,
        ``normalization``, ``history``).

    Raises:
        LandscapeError: unreadable/unsafe files, unknown or mismatched architecture.
    """
    obj = read_checkpoint_file(path, trust)
    whole_module = obj if isinstance(obj, nn.Module) else None
    sd, meta = extract_state_dict(obj)
    stored_arch = meta.get("arch") if isinstance(meta.get("arch"), str) else None
    name = arch or stored_arch or getattr(whole_module, "arch", None)
    guessed_classes, guessed_channels = _guess_shape(sd)
    if num_classes is not None and num_classes != guessed_classes:
        raise LandscapeError(f"checkpoint {path!r} has a {guessed_classes}-class classifier but "
                             f"{num_classes} classes were requested; drop --num-classes or use the matching data")
    n_cls = int(meta.get("num_classes", guessed_classes))
    in_ch = int(meta.get("in_channels", guessed_channels))
    if name is None:
        if whole_module is None:
            raise LandscapeError(f"checkpoint {path!r} does not record its architecture; pass --arch "
                                 "(e.g. --arch resnet56, or --arch resnet56_noshort for the plain net)")
        model = whole_module
        name = type(model).__name__
    else:
        model = create_model(name, num_classes=n_cls, in_channels=in_ch)
        name = canonical_name(name)
        load_into(model, sd, source=f"checkpoint {path!r}")
    model.eval()
    info = {k: v for k, v in meta.items() if k in ("epoch", "acc", "dataset", "normalization", "history",
                                                    "args", "train_acc", "test_acc")}
    info.update(arch=name, num_classes=n_cls, in_channels=in_ch, sha256=file_sha256(path),
                path=os.path.abspath(path))
    return model, info


def save_checkpoint(path: str, model: nn.Module, arch: str, **meta: Any) -> None:
    """Save our checkpoint format: ``{'state_dict', 'arch', 'num_classes', 'in_channels', **meta}``.

    Written to a temporary file and renamed, so a crash never leaves a truncated checkpoint behind.
    ``meta`` must hold only plain types (numbers, strings, lists, dicts, tensors) so it loads with
    ``weights_only=True``.
    """
    sd = OrderedDict((k, v.detach().cpu().clone()) for k, v in model.state_dict().items())
    num_classes, in_channels = _guess_shape(sd)
    payload = {"state_dict": sd, "arch": canonical_name(arch), "num_classes": num_classes,
               "in_channels": in_channels, **meta}
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise write_error(folder, e, "cannot create folder") from e
    # Through a Python file object, so a full disk is an OSError with its errno (torch.save to a path reports
    # it as a RuntimeError without one).
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)
