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
from landscape.keymatch import load_into
from landscape.models import canonical_name, create_model, detect_arch, shape_hints
from landscape.paths import atomic_open, write_error
from landscape.tensorfile import INDEX_SUFFIX, is_safetensors, read_safetensors, read_safetensors_index
from landscape.validate import check_finite, check_tensors, checked_meta

STATE_KEYS = ("state_dict", "model", "model_state_dict", "net")
PREFIXES = ("module.", "_orig_mod.")


def file_sha256(path: str) -> str:
    """Hex SHA-256 of a file (a sharded checkpoint's index: of it and its shards), recorded in surface files so a
    resumed run can tell the checkpoint changed."""
    h = hashlib.sha256()
    files = [path]
    if path.endswith(INDEX_SUFFIX):
        import json

        with open(path, encoding="utf-8") as f:
            shards = dict.fromkeys(json.load(f).get("weight_map", {}).values())
        files += [os.path.join(os.path.dirname(os.path.abspath(path)), os.path.basename(str(s))) for s in shards]
    for file in files:
        with open(file, "rb") as f:
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
            try:
                return torch.load(path, map_location="cpu", weights_only=False)
            except (AttributeError, ModuleNotFoundError, ImportError) as e:
                # A whole pickled model (or object) whose class lives in code this process cannot import.
                raise LandscapeError(
                    f"checkpoint {path!r} holds a pickled object whose class cannot be imported here "
                    f"({type(e).__name__}: {_first_line(e).split(': ', 1)[-1]}); import or define that class "
                    "first (from Python: before calling), or re-save model.state_dict() and load it with "
                    "--model MODULE:FACTORY")
        # numpy scalars (e.g. an ``acc`` saved as np.float64 by old training scripts) are data, not code.
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except LandscapeError:
        raise
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        if trust or not found:
            raise LandscapeError(
                f"checkpoint {path!r} is not a readable torch checkpoint (truncated or corrupt?): {_first_line(e)}"
            )
        # The weights-only unpickler refuses globals it does not know (a whole pickled nn.Module, or a payload
        # that would run code) and raises before executing anything, so nothing ran.
        if found.group(1).startswith("__main__."):
            raise LandscapeError(
                f"checkpoint {path!r} is a whole model pickled from a script or notebook (class "
                f"{found.group(1)}), which cannot be imported anywhere else; in that session re-save "
                "model.state_dict() and load it with --model MODULE:FACTORY (or --arch)")
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
        if not isinstance(k, str):  # a state_dict's keys are parameter names
            raise LandscapeError(f"the checkpoint's state_dict has a key {k!r} ({type(k).__name__}) where a "
                                 "parameter name (a string) belongs; re-save it with model.state_dict()")
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


def build_for(sd: dict, meta: dict, path: str, arch: str | None, model: str | None) -> tuple[nn.Module, str]:
    """The untrained module the weights ``sd`` belong to, and its name: ``--model`` if given, else ``--arch``,
    else the recorded ``arch``, else the built-in architecture detected from the keys and shapes."""
    hints = shape_hints(sd)
    hints["num_classes"] = int(meta.get("num_classes", hints["num_classes"]))
    hints["in_channels"] = int(meta.get("in_channels", hints["in_channels"]))
    if model:
        from landscape.models.external import build_model

        return build_model(model, hints["num_classes"], hints["in_channels"]), model
    stored = meta.get("arch") if isinstance(meta.get("arch"), str) else None
    name = arch or stored
    if name is None:
        name, closest = detect_arch(sd)
        if name is None:
            near = f" (closest built-in: {', '.join(closest)})" if closest else ""
            raise LandscapeError(f"checkpoint {path!r} does not record its architecture and its keys match no "
                                 f"built-in one{near}; pass --arch NAME, or --model torchvision:NAME / "
                                 "MODULE:FACTORY for any other network")
    return create_model(name, **hints), canonical_name(name)


def _build_and_load(sd: dict, meta: dict, path: str, arch: str | None, model: str | None, hint: str
                    ) -> tuple[nn.Module, str, str]:
    """The network with the checkpoint's weights: built on the meta device (no random weights made only to be
    overwritten) and given the checkpoint's tensors themselves, so the weights are in memory once; a network
    that cannot be built so (an initializer that reads its weights, buffers that are not saved) is built and
    loaded the usual way."""
    try:
        with torch.device("meta"):
            net, name = build_for(sd, meta, path, arch, model)
    except LandscapeError:
        raise
    except Exception:  # noqa: BLE001 - a factory that cannot run on the meta device: build it normally below
        net = None
    tied = net is not None and len(list(net.named_parameters(remove_duplicate=False))) != \
        len(list(net.named_parameters()))  # assigning would untie shared weights
    if net is not None and not tied:
        prefix = load_into(net, sd, source=f"checkpoint {path!r}", hint=hint, assign=True)
        if not any(t.is_meta for t in list(net.parameters()) + list(net.buffers())):
            return net, name, prefix
    net, name = build_for(sd, meta, path, arch, model)
    return net, name, load_into(net, sd, source=f"checkpoint {path!r}", hint=hint)


def load_checkpoint(path: str, arch: str | None = None, trust: bool = False,
                    num_classes: int | None = None, model: str | None = None) -> tuple[nn.Module, dict]:
    """Load a checkpoint file into a freshly built model.

    Args:
        path: checkpoint file (any format of DESIGN section 3, Lightning ``.ckpt``, ``.safetensors``, or a sharded
            checkpoint's ``*.safetensors.index.json``).
        arch: registry name; optional when the checkpoint records ``arch`` (ours do) or its keys and shapes are
            those of a built-in architecture (detected).
        trust: allow full unpickling (code execution). Only for files from trusted authors.
        num_classes: expected classifier size; default: read from the checkpoint.
        model: ``--model`` spec (``torchvision:NAME``, ``timm:NAME``, ``MODULE:FACTORY``) building the network
            the weights are loaded into, instead of the registry.

    Returns:
        ``(model, info)``: the model in eval mode on the CPU; ``info`` holds ``arch``, ``num_classes``,
        ``in_channels``, ``sha256``, ``path``, the ``prefix`` removed from the keys, ``own`` (a network of the
        user's own: ``--model``, or a whole pickled module of an unregistered class), and any stored metadata
        (``epoch``, ``acc``, ``dataset``, ``normalization``, ``history``).

    Raises:
        LandscapeError: unreadable/unsafe files, non-finite weights, unknown or mismatched architecture.
    """
    if path.endswith(INDEX_SUFFIX):  # a sharded checkpoint: its shards, one after another
        sd, meta = read_safetensors_index(path)
        whole_module = None
    elif is_safetensors(path):
        sd, meta = read_safetensors(path)
        whole_module = None
    else:
        obj = read_checkpoint_file(path, trust)
        whole_module = obj if isinstance(obj, nn.Module) else None
        sd, meta = extract_state_dict(obj)
    # What the file declares is checked before it is used: shapes against storage before any whole-tensor
    # operation (the NaN check), counts before a network is built with them.
    check_tensors(sd, path)
    meta = checked_meta(meta, sd, path)
    check_finite(sd, path)
    hints = shape_hints(sd)
    if num_classes is not None and num_classes != hints["num_classes"]:
        raise LandscapeError(f"checkpoint {path!r} has a {hints['num_classes']}-class classifier but "
                             f"{num_classes} classes were requested; drop --num-classes or use the matching data")
    prefix = ""
    if whole_module is not None and not (arch or model):
        net, name = whole_module, str(getattr(whole_module, "arch", type(whole_module).__name__))
    else:
        hint = ("check --model" if model else
                "check --arch (e.g. resnet56 vs plain56 / resnet56_noshort), or name any other network with "
                "--model torchvision:NAME / MODULE:FACTORY")
        net, name, prefix = _build_and_load(sd, meta, path, arch, model, hint)
    net.eval()
    info = {k: v for k, v in meta.items() if k in ("epoch", "acc", "dataset", "normalization", "history",
                                                    "args", "train_acc", "test_acc")}
    # without a convolution the input channels are unknown (a guess of 3 would reject 1-channel data)
    conv = any(v.dim() == 4 for k, v in sd.items() if k.endswith("weight"))
    in_ch = meta.get("in_channels", hints["in_channels"] if conv else None)
    info.update(arch=name, num_classes=int(meta.get("num_classes", hints["num_classes"])),
                in_channels=int(in_ch) if in_ch is not None else None, sha256=file_sha256(path),
                path=os.path.abspath(path), prefix=prefix,
                own=bool(model) or canonical_name_or_none(name) is None)  # a network of the user's own
    return net, info


def canonical_name_or_none(name: str) -> str | None:
    """The registry's name for ``name``, or ``None`` when it is not a registered architecture."""
    try:
        return canonical_name(name)
    except LandscapeError:
        return None


def save_checkpoint(path: str, model: nn.Module, arch: str, **meta: Any) -> None:
    """Save our checkpoint format: ``{'state_dict', 'arch', 'num_classes', 'in_channels', **meta}``.

    Written to a temporary file and renamed, so a crash never leaves a truncated checkpoint behind.
    ``meta`` must hold only plain types (numbers, strings, lists, dicts, tensors) so it loads with
    ``weights_only=True``.
    """
    sd = OrderedDict((k, v.detach().cpu().clone()) for k, v in model.state_dict().items())
    hints = shape_hints(sd)
    payload = {"state_dict": sd, "arch": canonical_name(arch), "num_classes": hints["num_classes"],
               "in_channels": hints["in_channels"], **meta}
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise write_error(folder, e, "cannot create folder") from e
    # Through a Python file object, so a full disk is an OSError with its errno (torch.save to a path reports
    # it as a RuntimeError without one).
    with atomic_open(path, "wb") as f:
        torch.save(payload, f)
