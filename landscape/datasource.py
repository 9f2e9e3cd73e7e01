"""Evaluation data from anything a researcher holds: a spec string, a :class:`Data`, tensors (inputs alone, an
``(inputs, targets)`` pair, a tuple of several inputs and the targets), a dict of tensors (``{"input_ids": ...,
"labels": ...}``, a ``BatchEncoding``), a list or other iterable of such batches, a ``torch.utils.data.Dataset``
whose items are tuples or dicts, or a ``DataLoader`` yielding any of these.

A Dataset, DataLoader or list of batches is read exactly once (its transforms run once) and joined into one batch
of every sample (:mod:`landscape.batching`); every grid point then reuses it. It lives on the evaluation device
when it fits its memory budget, otherwise in pinned host memory, streamed to the device batch by batch
(:attr:`Data.streamed`). Never a DataLoader pass per point.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from landscape import batching
from landscape.data import Data, load_data
from landscape.errors import LandscapeError
from landscape.losses import is_class_labels

# Share of the free device memory the resident data may take; the rest is for the model and its activations
# (plan_gpu_step plans those with half of what is free after the data).
DEVICE_DATA_FRACTION = 0.4
READ_BATCH = 256  # samples per step when a Dataset is read (one pass, no workers)


def resolve_data(data: Any, *, split: str = "train", samples: int | None = None,
                 device: torch.device | str = "cpu", in_channels: int | None = None,
                 budget_bytes: int | None = None, image_size: int | None = None, normalization: str = "default",
                 recorded_normalization: dict | None = None, text: dict | None = None) -> Data:
    """Any supported data argument -> :class:`Data` for ``device`` (resident, or streamed above the budget).

    Args:
        data: a spec string (``digits``, ``cifar10:DIR``, ...), a :class:`Data`, one batch of every sample
            (a tensor of inputs, ``(inputs, targets)``, ``(x1, x2, targets)``, a dict of tensors; tensors or numpy
            arrays), a list or iterable of such batches, a ``Dataset`` whose items are tuples or dicts (collated
            as a ``DataLoader`` would), or a ``DataLoader`` yielding batches of any of these forms.
        split: recorded split name (and which split a spec string loads).
        samples: keep the first N samples (a Dataset/DataLoader stops reading there).
        device: where evaluation runs.
        in_channels: the model's input channels (shapes ``synthetic`` data).
        budget_bytes: device memory the data may take; default: 40 % of the free memory on a GPU, unlimited on
            the CPU. Larger data is streamed from host memory.
        image_size, normalization, recorded_normalization, text: for spec strings (see
            :func:`landscape.datasets.load_data`); tensors, Datasets and DataLoaders are taken as they are.

    Raises:
        LandscapeError: unsupported objects, malformed items, empty data, bad ``samples``, data larger than the
            host's available memory.
    """
    device = torch.device(device)
    if samples is not None and samples <= 0:
        raise LandscapeError(f"samples must be a positive integer; got {samples}")
    if not isinstance(data, str) and str(normalization) != "default":
        raise LandscapeError(f"normalization={normalization!r} applies to data given as a spec string (e.g. "
                             "'cifar10:DIR'); normalize tensors, Datasets and DataLoaders yourself")
    if isinstance(data, str):
        out = load_data(data, split, samples, "cpu", in_channels=in_channels, image_size=image_size,
                        normalization=normalization, recorded_normalization=recorded_normalization, text=text)
    elif isinstance(data, Data):
        out = data.head(samples) if samples else data
    elif isinstance(data, torch.utils.data.DataLoader):
        out = _read_once(data, samples, split, f"DataLoader:{type(data.dataset).__name__}")
    elif isinstance(data, torch.utils.data.Dataset):
        loader = torch.utils.data.DataLoader(data, batch_size=READ_BATCH, shuffle=False, num_workers=0)
        out = _read_once(loader, samples, split, f"Dataset:{type(data).__name__}")
    elif is_batch_list(data):
        out = _read_once(data, samples, split, f"{type(data).__name__} of {len(data)} batches")
    elif isinstance(data, (torch.Tensor, Mapping, tuple, list)) or _is_array(data):
        x, y, layout = batching.split_batch(data, "the data")
        out = Data(x, y, "tensors", split, _num_classes(y), layout=layout)
        if samples:
            out = out.head(samples)
    elif isinstance(data, Iterable) and not isinstance(data, (str, bytes)):
        out = _read_once(data, samples, split, type(data).__name__)
    else:
        raise LandscapeError(f"unsupported data {type(data).__name__}; pass a spec string (e.g. 'digits', "
                             "'cifar10:DIR'), tensors (inputs, or (inputs, targets)), a dict of tensors, a list of "
                             "batches, a torch Dataset or a DataLoader")
    if len(out) == 0:
        raise LandscapeError(f"the data {out.name!r} holds no samples")
    return place(out, device, budget_bytes)


def place(data: Data, device: torch.device, budget_bytes: int | None = None) -> Data:
    """Resident on ``device`` when it fits ``budget_bytes``, else streamed from (pinned) host memory."""
    if budget_bytes is None:
        if device.type == "cuda":
            budget_bytes = int(DEVICE_DATA_FRACTION * torch.cuda.mem_get_info(device)[0])
        else:
            budget_bytes = data.nbytes  # the CPU's memory is the host's: resident
    if data.nbytes <= budget_bytes:
        return data.to(device)
    host = data.to("cpu")
    if torch.cuda.is_available() and device.type == "cuda":
        host = host._map(lambda t: t.pin_memory())  # page-locked: asynchronous copies at full bus speed
    return host._replace(device=device, streamed=True)


def is_batch_list(data: Any) -> bool:
    """A list whose items are batches (dicts or tuples), as opposed to one batch's fields: ``[(x, y), (x, y)]``,
    ``[{"input_ids": ...}, ...]``. A list of tensors is one batch's fields (``[inputs, targets]``)."""
    return isinstance(data, list) and len(data) > 0 and all(isinstance(b, (Mapping, tuple, list)) for b in data)


def _is_array(v: Any) -> bool:
    return type(v).__module__ == "numpy" and type(v).__name__ == "ndarray"


def _num_classes(y: Any) -> int | None:
    return int(y.max()) + 1 if isinstance(y, torch.Tensor) and is_class_labels(y) and len(y) else None


def _available_host_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _read_once(loader: Iterable, samples: int | None, split: str, name: str) -> Data:
    """One pass over ``loader`` (a DataLoader, a list or any iterable of batches) into one batch of every sample
    on the CPU (stopping after ``samples``)."""
    parts: list = []
    layout = None
    n = 0
    total = _length(loader, samples)
    avail = _available_host_bytes()
    for i, batch in enumerate(loader):
        x, y, kind = batching.split_batch(batch, f"{name}'s batch {i}")
        if layout is not None and kind != layout:
            raise LandscapeError(f"{name}: batch {i} is {kind!r} but batch 0 is {layout!r}; give every batch the "
                                 "same structure")
        layout = kind
        size = batching.length((x, y) if y is not None else x, f"{name}'s batch {i}")
        if i == 0 and total is not None and avail is not None and size:
            need = total * (batching.nbytes(x) + batching.nbytes(y)) / size
            if need > 0.8 * avail:
                raise LandscapeError(f"{name} needs about {need / 2**30:.1f} GiB in memory but only "
                                     f"{avail / 2**30:.1f} GiB is available; pass samples=N (--samples N) to "
                                     "evaluate on the first N samples")
        parts.append(batching.tree_map(lambda t: t.cpu(), (x, y)))
        n += size
        if samples is not None and n >= samples:
            break
    if not parts:
        raise LandscapeError(f"{name} yielded no batches")
    x, y = batching.concatenate(parts, name)
    out = Data(batching.tree_map(lambda t: t.contiguous(), x), y, name, split, _num_classes(y), layout=layout)
    if samples is not None and len(out) > samples:
        out = out.head(samples)
    whole = _length(loader, None)  # the data set's size, when it has one: the population the samples are from
    out.population = whole if whole is not None and whole > len(out) else None
    return out


def _length(loader: Iterable, samples: int | None) -> int | None:
    """The number of samples ``loader`` holds, when it says (a DataLoader's data set, or a list of batches)."""
    try:
        if isinstance(loader, torch.utils.data.DataLoader):
            n = len(loader.dataset)  # type: ignore[arg-type]
        elif isinstance(loader, list):
            n = sum(batching.length(batching.split_batch(b, "a batch")[0]) for b in loader)
        else:
            return samples
    except TypeError:  # an IterableDataset without __len__
        return samples
    return min(n, samples) if samples else n


__all__ = ["resolve_data", "place"]
