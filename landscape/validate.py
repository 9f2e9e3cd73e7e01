"""Checks on what a checkpoint declares, run before anything trusts it (issue #24, hostile files).

A checkpoint is untrusted input: its tensors may declare more elements than they store (a stride-0 view of one
number saved as a 200,000 x 200,000 weight: a few bytes on disk, 160 GB for the first whole-tensor operation),
its metadata may hold any pickleable value where a number of classes is expected, and its BatchNorm statistics
may be impossible (a negative variance, which turns every output into NaN: a silent all-NaN surface). Each check
here ends in a one-line :class:`LandscapeError` naming the entry, what it holds and what would be valid.
"""

from __future__ import annotations

import json
import math
import numbers
import reprlib
from typing import Any

import torch

from landscape.errors import LandscapeError

# Floating dtypes ``torch.isfinite`` takes on the CPU; any other floating dtype (float8) is checked as float32.
_NATIVE_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
_TEXT_LIMIT = 1 << 20  # a normalization recorded as JSON text (safetensors metadata): no more than 1 MiB of it


def _shape(t: torch.Tensor) -> str:
    return f"({', '.join(str(s) for s in t.shape)})"


def check_tensors(sd: dict, path: str) -> None:
    """Refuse tensors no network can hold, before any operation reads them whole.

    Raises:
        LandscapeError: a sparse, quantized, complex or meta (data-less) tensor, or one whose declared element
            count exceeds the elements its storage holds (an expanded or overlapping view, which would blow up the
            first whole-tensor operation and cannot be written in place by the lean path).
    """
    for k, v in sd.items():
        where = f"checkpoint {path!r}: tensor {short_repr(k)}"
        if v.layout != torch.strided:
            raise LandscapeError(f"{where} is a {str(v.layout).replace('torch.', '')} tensor; weights must be "
                                 "dense: re-save it with tensor.to_dense()")
        if v.is_meta:
            raise LandscapeError(f"{where} holds no data (a meta-device tensor of shape {_shape(v)}); save the "
                                 "state_dict of a model whose weights are materialized")
        if v.is_quantized or v.is_complex():
            raise LandscapeError(f"{where} has dtype {str(v.dtype).replace('torch.', '')}; weights must be real "
                                 "floating-point (or integer) tensors: dequantize it (tensor.dequantize()) or "
                                 "re-save it as float32")
        stored = v.untyped_storage().nbytes() // max(1, v.element_size()) - v.storage_offset()
        if v.numel() > max(0, stored):
            raise LandscapeError(f"{where} declares shape {_shape(v)} ({v.numel():,} elements) but its storage "
                                 f"holds {max(0, stored):,} (an expanded or overlapping view, strides "
                                 f"{tuple(v.stride())}); re-save it with tensor.contiguous()")


def check_finite(sd: dict, path: str) -> None:
    """Refuse weights holding NaN or inf (a diverged run: no landscape around them means anything) and BatchNorm
    running variances below zero (normalizing by the square root of a negative number makes every output NaN).

    Run after :func:`check_tensors`, so each tensor's elements are bytes the file really holds.
    """
    for k, v in sd.items():
        if not v.is_floating_point():
            continue
        finite = torch.isfinite(v if v.dtype in _NATIVE_FLOATS else v.float())
        if not bool(finite.all()):
            bad = int((~finite).sum())
            what = "in the BatchNorm buffer" if k.endswith(("running_mean", "running_var")) else "in"
            raise LandscapeError(f"checkpoint {path!r} holds non-finite values (NaN/inf) {what} {short_repr(k)} "
                                 f"({bad} of {v.numel()} entries): the run diverged; use an earlier checkpoint")
        if k.endswith("running_var") and bool((v < 0).any()):
            bad = int((v < 0).sum())
            raise LandscapeError(f"checkpoint {path!r}: the BatchNorm buffer {short_repr(k)} holds negative variances "
                                 f"({bad} of {v.numel()}, smallest {float(v.min()):.4g}); a variance is >= 0, so the "
                                 "file is corrupt or was edited: use another checkpoint, or re-save this one with "
                                 "statistics recomputed on its training data")


def checked_meta(meta: dict, sd: dict, path: str) -> dict:
    """``meta`` with ``num_classes``/``in_channels`` as ints and ``normalization`` as ``{"mean": [float],
    "std": [float]}``, each checked (a safetensors file records them as text: ``"10"``, JSON).

    Raises:
        LandscapeError: a count that is not a whole number from 1 to the size of the largest tensor (a classifier
            of N classes, a stem of N channels, has at least N weights), or a malformed normalization.
    """
    out = dict(meta)
    largest = max((v.numel() for v in sd.values()), default=0)
    for key in ("num_classes", "in_channels"):
        if out.get(key) is None:  # None: not recorded (read from the weights' shapes)
            out.pop(key, None)
        else:
            out[key] = _count(out[key], key, largest, path)
    if out.get("normalization") is not None:
        stem = next((v for k, v in sd.items() if k.endswith("weight") and v.dim() == 4), None)
        channels = out.get("in_channels", int(stem.shape[1]) if stem is not None else None)
        out["normalization"] = _normalization(out["normalization"], channels, path)
    if out.get("history") is not None:
        out["history"] = _history(out["history"], path)
    return out


_WHY = {"num_classes": "a classifier of N classes has at least N weights",
        "in_channels": "a first layer taking N channels has at least N weights"}


def _count(v: Any, key: str, largest: int, path: str) -> int:
    n = None
    if isinstance(v, torch.Tensor) and v.dim() == 0 and v.dtype != torch.bool:
        v = v.item()
    if isinstance(v, numbers.Integral) and not isinstance(v, bool):  # numpy integers too
        n = int(v)
    elif isinstance(v, float) and v.is_integer():  # 10.0 (a config read as JSON numbers) loaded before: still does
        n = int(v)
    elif isinstance(v, str) and v.strip().isdecimal() and len(v.strip()) <= 19:  # safetensors metadata is text
        n = int(v.strip())
    if n is None or not 1 <= n <= max(1, largest):
        got = f"{type(v).__name__} {short_repr(v)}"
        raise LandscapeError(f"checkpoint {path!r} records {key}={got}; expected a whole number from 1 to "
                             f"{max(1, largest):,}, its largest tensor's size ({_WHY[key]}); fix the entry, or "
                             "re-save the checkpoint without it (it is then read from the weights' shapes)")
    return n


def _normalization(v: Any, channels: int | None, path: str) -> dict:
    how = ('expected {"mean": [...], "std": [...]} with one finite number per input channel in each, every std '
           "> 0; fix the entry, or re-save the checkpoint without it (then choose the inputs with --normalization)")
    v = _parsed(v)
    if not isinstance(v, dict) or "mean" not in v or "std" not in v:
        raise LandscapeError(f"checkpoint {path!r} records normalization={type(v).__name__} {short_repr(v)}; {how}")
    values = {}
    for part in ("mean", "std"):
        seq = v[part]
        if isinstance(seq, torch.Tensor) and seq.dim() == 1 and seq.numel() <= 4096:
            seq = seq.tolist()
        ok = isinstance(seq, (list, tuple)) and 0 < len(seq) <= 4096 and all(_real(s, finite=True) for s in seq)
        if not ok or (part == "std" and any(s <= 0 for s in seq)):
            raise LandscapeError(f"checkpoint {path!r} records normalization {part}={short_repr(seq)}; {how}")
        values[part] = [float(s) for s in seq]
    lengths = {len(values["mean"]), len(values["std"])}
    if len(lengths) > 1 or (channels is not None and lengths != {channels}):
        raise LandscapeError(f"checkpoint {path!r} records a normalization of {len(values['mean'])} mean and "
                             f"{len(values['std'])} std values for a network of "
                             f"{channels if channels is not None else 'unknown'} input channels; {how}")
    return values


def _history(h: Any, path: str) -> dict:
    """What ``landscape.report`` reads of a training history: per-epoch error lists of numbers."""
    h = _parsed(h)
    ok = isinstance(h, dict) and all(
        isinstance(h[k], (list, tuple)) and all(_real(e) for e in h[k])
        for k in ("train_err", "test_err") if k in h)
    if not ok:
        raise LandscapeError(f"checkpoint {path!r} records history={type(h).__name__} {short_repr(h)}; expected a dict "
                             "of per-epoch lists of numbers ('train_err', 'test_err'), as landscape.train writes; "
                             "drop the entry")
    return h


def _parsed(v: Any) -> Any:
    """``v``, or the JSON object it spells (safetensors metadata holds only text; at most 1 MiB of it)."""
    if isinstance(v, str) and len(v) <= _TEXT_LIMIT and v.lstrip().startswith("{"):
        try:
            return json.loads(v)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
            return v
    return v


def _real(v: Any, finite: bool = False) -> bool:
    """A real number (not a bool) that converts to a float (``10**400`` does not), finite if asked."""
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(float(v)) or not finite
    except (OverflowError, ValueError, TypeError):
        return False


_REPR = reprlib.Repr()  # attributes, not keywords: Python 3.11's Repr() takes none
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 3, 6, 6, 4, 120, 60


def short_repr(v: Any) -> str:
    """A bounded ``repr(v)`` for a one-line message (a pickled list can nest deeper than ``repr`` recurses)."""
    return _REPR.repr(v).replace("\n", " ")
