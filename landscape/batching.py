"""Batches of any structure: a tensor, a tuple of tensors, a dict of tensors (``{"input_ids", "attention_mask",
"labels"}``, a HuggingFace ``BatchEncoding``), each leaf with a leading sample dimension.

The evaluator never looks inside a batch beyond this module: it slices, gathers, concatenates and moves batches
leaf by leaf, calls the model on them, and hands them to an objective as the user gave them. How a batch splits
into the model's inputs and the loss's targets is its *layout*, decided once when the data is read:

* ``pair``: ``(inputs, targets)``; ``model(inputs)`` (``model(*inputs)`` for a tuple, ``model(**inputs)`` for a
  dict), the loss gets ``targets``;
* ``flat``: ``(x1, ..., xk, targets)`` with k >= 2 (a ``TensorDataset(x1, x2, y)``); ``model(x1, ..., xk)``;
* ``inputs``: inputs alone (a tensor, or a tuple of them); only with an objective or a model that returns its
  own loss;
* ``dict``: a dict; ``model(**batch)``, the loss's targets are ``batch["labels"]`` (when there are any).

Torch tensors only: numpy arrays are converted once, when the data is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import torch

from landscape.errors import LandscapeError

LAYOUTS = ("pair", "flat", "inputs", "dict")
LABELS = "labels"  # the key HuggingFace models take their targets under


def tree_map(fn: Callable[[torch.Tensor], Any], tree: Any) -> Any:
    """``fn`` applied to every tensor of a tensor / tuple / list / dict, keeping the structure (a Mapping such as
    ``BatchEncoding`` becomes a plain dict; ``None`` stays ``None``)."""
    if isinstance(tree, torch.Tensor):
        return fn(tree)
    if tree is None:
        return None
    if isinstance(tree, Mapping):
        return {k: tree_map(fn, v) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(tree_map(fn, v) for v in tree)
    if isinstance(tree, list):
        return [tree_map(fn, v) for v in tree]
    raise LandscapeError(f"a batch may hold tensors, tuples and dicts of tensors; found a {type(tree).__name__}")


def leaves(tree: Any) -> list[torch.Tensor]:
    """The tensors of a batch, in order."""
    out: list[torch.Tensor] = []
    tree_map(out.append, tree)
    return out


def as_tensors(tree: Any, what: str) -> Any:
    """A batch read from the user: numpy arrays become tensors, tensors are detached; anything else is an error
    naming where it was found."""
    if isinstance(tree, np.ndarray):
        return torch.from_numpy(tree)
    if isinstance(tree, torch.Tensor):
        return tree.detach()
    if isinstance(tree, Mapping):
        return {k: as_tensors(v, f"{what}[{k!r}]") for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return tuple(as_tensors(v, f"{what}[{i}]") for i, v in enumerate(tree))
    raise LandscapeError(f"{what} is a {type(tree).__name__}; a batch may hold torch tensors or numpy arrays, in "
                         "tuples or dicts (tokenize text first, e.g. tokenizer(..., return_tensors='pt'))")


def length(tree: Any, what: str = "the data") -> int:
    """The number of samples: the leading dimension every tensor shares."""
    sizes = {tuple(t.shape[:1]) for t in leaves(tree)}
    if not sizes:
        raise LandscapeError(f"{what} holds no tensors")
    if () in sizes:
        raise LandscapeError(f"{what} holds a 0-dimensional tensor; every tensor needs a leading sample dimension")
    if len(sizes) > 1:
        raise LandscapeError(f"the tensors of {what} differ in their first (sample) dimension: "
                             f"{sorted(s[0] for s in sizes)}; give every input and target one row per sample")
    return int(next(iter(sizes))[0])


def nbytes(tree: Any) -> int:
    return sum(t.element_size() * t.numel() for t in leaves(tree))


def signature(tree: Any) -> Any:
    """The structure of a batch with each tensor replaced by ``(shape without the sample dim, dtype)``: two batches
    can be concatenated when their signatures are equal."""
    return tree_map(lambda t: (tuple(t.shape[1:]), t.dtype), tree)


def concatenate(batches: list, what: str) -> Any:
    """Batches of one structure joined along the sample dimension (a ragged batch is a one-line error: padding is
    the collate function's business, never guessed here)."""
    first = signature(batches[0])
    for i, b in enumerate(batches[1:], 1):
        sig = signature(b)
        if sig != first:
            raise LandscapeError(f"{what}: batch {i} differs from batch 0 in structure or shape ({_diff(first, sig)});"
                                 " every batch must have the same fields and, beyond the sample dimension, the "
                                 "same shapes: pad to one length in the collate function (e.g. padding="
                                 "'max_length')")
    if len(batches) == 1:
        return batches[0]
    flat = [leaves(b) for b in batches]
    joined = iter([torch.cat(ts) for ts in zip(*flat)])
    return tree_map(lambda _: next(joined), batches[0])


def _diff(a: Any, b: Any) -> str:
    la, lb = _labelled(a), _labelled(b)
    if [k for k, _ in la] != [k for k, _ in lb]:
        return f"fields {[k for k, _ in la]} vs {[k for k, _ in lb]}"
    for (k, va), (_, vb) in zip(la, lb):
        if va != vb:
            return f"{k or 'the tensor'}: shape {va[0]} {str(va[1])[6:]} vs {vb[0]} {str(vb[1])[6:]}"
    return "?"


def _labelled(sig: Any, prefix: str = "") -> list:
    if isinstance(sig, dict):
        return [x for k, v in sig.items() for x in _labelled(v, f"{prefix}{k}")]
    if isinstance(sig, (tuple, list)) and not (len(sig) == 2 and isinstance(sig[1], torch.dtype)):
        return [x for i, v in enumerate(sig) for x in _labelled(v, f"{prefix}[{i}]")]
    return [(prefix, sig)]


def split_batch(batch: Any, what: str) -> tuple[Any, Any, str]:
    """One batch as given -> ``(inputs, targets, layout)`` (see the module docstring)."""
    batch = as_tensors(batch, what)
    if isinstance(batch, dict):
        return batch, None, "dict"
    if isinstance(batch, torch.Tensor):
        return batch, None, "inputs"
    if len(batch) == 0:
        raise LandscapeError(f"{what} is an empty tuple; give (inputs, targets), inputs alone, or a dict")
    if len(batch) == 1:
        return batch[0], None, "inputs"
    if len(batch) == 2:
        return batch[0], batch[1], "pair"
    return tuple(batch[:-1]), batch[-1], "flat"


def join_batch(x: Any, y: Any, layout: str) -> Any:
    """Inverse of :func:`split_batch`: the batch as the user gave it (what an objective receives)."""
    if layout == "pair":
        return (x, y)
    if layout == "flat":
        return (*x, y)
    return x


def call_model(model: Callable, x: Any) -> Any:
    """``model(x)``, ``model(*x)`` for a tuple of inputs, ``model(**x)`` for a dict."""
    if isinstance(x, dict):
        return model(**x)
    if isinstance(x, tuple):
        return model(*x)
    return model(x)


def targets_of(x: Any, y: Any, layout: str) -> torch.Tensor | None:
    """The loss's targets: ``y``, or a dict batch's ``labels``."""
    if layout == "dict":
        return x.get(LABELS) if isinstance(x, dict) else None
    return y


def describe(x: Any) -> str:
    """``(64, 8, 8)`` for a tensor, ``input_ids (2, 16), labels (2, 16)`` for a dict: for error messages."""
    if isinstance(x, torch.Tensor):
        return str(tuple(x.shape))
    if isinstance(x, dict):
        return ", ".join(f"{k} {tuple(v.shape) if isinstance(v, torch.Tensor) else '...'}" for k, v in x.items())
    return ", ".join(describe(v) for v in x)
