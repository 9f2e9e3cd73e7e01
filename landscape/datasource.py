"""Evaluation data from anything a researcher holds: a spec string, a :class:`Data`, ``(inputs, targets)``
tensors, a ``torch.utils.data.Dataset`` or a ``DataLoader``.

A Dataset or DataLoader is read exactly once (its transforms run once) into two tensors; every grid point then
reuses them. They live on the evaluation device when they fit its memory budget, otherwise in pinned host
memory, streamed to the device batch by batch (:attr:`Data.streamed`). Never a DataLoader pass per point.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

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
                 recorded_normalization: dict | None = None) -> Data:
    """Any supported data argument -> :class:`Data` for ``device`` (resident, or streamed above the budget).

    Args:
        data: a spec string (``digits``, ``cifar10:DIR``, ...), a :class:`Data`, an ``(inputs, targets)`` pair
            of tensors or arrays, a ``Dataset`` whose items are ``(input, target)``, or a ``DataLoader``
            yielding ``(inputs, targets)`` batches.
        split: recorded split name (and which split a spec string loads).
        samples: keep the first N samples (a Dataset/DataLoader stops reading there).
        device: where evaluation runs.
        in_channels: the model's input channels (shapes ``synthetic`` data).
        budget_bytes: device memory the data may take; default: 40 % of the free memory on a GPU, unlimited on
            the CPU. Larger data is streamed from host memory.
        image_size, normalization, recorded_normalization: for spec strings (see
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
                        normalization=normalization, recorded_normalization=recorded_normalization)
    elif isinstance(data, Data):
        out = data.head(samples) if samples else data
    elif isinstance(data, (tuple, list)) and len(data) == 2 and not isinstance(data[0], (str, bytes)):
        x, y = (_as_tensor(v, what) for v, what in zip(data, ("inputs", "targets")))
        out = Data(x, y, "tensors", split, _num_classes(y))
        if samples:
            out = out.head(samples)
    elif isinstance(data, torch.utils.data.DataLoader):
        out = _read_once(data, samples, split, f"DataLoader:{type(data.dataset).__name__}")
    elif isinstance(data, torch.utils.data.Dataset):
        loader = torch.utils.data.DataLoader(data, batch_size=READ_BATCH, shuffle=False, num_workers=0)
        out = _read_once(loader, samples, split, f"Dataset:{type(data).__name__}")
    else:
        raise LandscapeError(f"unsupported data {type(data).__name__}; pass a spec string (e.g. 'digits', "
                             "'cifar10:DIR'), (inputs, targets) tensors, a torch Dataset or a DataLoader")
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
    x, y = host.x, host.y
    if torch.cuda.is_available() and device.type == "cuda":
        x, y = x.pin_memory(), y.pin_memory()  # page-locked: asynchronous copies at full bus speed
    return host._replace(x=x, y=y, device=device, streamed=True)


def _as_tensor(v: Any, what: str) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        return v.detach()
    if isinstance(v, np.ndarray):
        return torch.from_numpy(v)
    raise LandscapeError(f"{what} must be a torch tensor or numpy array; got {type(v).__name__}")


def _num_classes(y: torch.Tensor) -> int | None:
    return int(y.max()) + 1 if is_class_labels(y) and len(y) else None


def _available_host_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _read_once(loader: torch.utils.data.DataLoader, samples: int | None, split: str, name: str) -> Data:
    """One pass over ``loader`` into two CPU tensors (stopping after ``samples``)."""
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    n = 0
    total = _length(loader, samples)
    avail = _available_host_bytes()
    for i, batch in enumerate(loader):
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise LandscapeError(f"{name} must give (input, target) pairs; its batch {i} is a "
                                 f"{type(batch).__name__}")
        x, y = _as_tensor(batch[0], "inputs"), _as_tensor(batch[1], "targets")
        if i == 0 and total is not None and avail is not None:
            need = total * (x[0].element_size() * x[0].numel() + y[0].element_size() * max(1, y[0].numel()))
            if need > 0.8 * avail:
                raise LandscapeError(f"{name} needs about {need / 2**30:.1f} GiB in memory but only "
                                     f"{avail / 2**30:.1f} GiB is available; pass samples=N (--samples N) to "
                                     "evaluate on the first N samples")
        xs.append(x.cpu())
        ys.append(y.cpu())
        n += len(y)
        if samples is not None and n >= samples:
            break
    if not xs:
        raise LandscapeError(f"{name} yielded no batches")
    x, y = torch.cat(xs), torch.cat(ys)
    if samples is not None:
        x, y = x[:samples], y[:samples]
    whole = _length(loader, None)  # the data set's size, when it has one: the population the samples are from
    return Data(x.contiguous(), y, name, split, _num_classes(y),
                population=whole if whole is not None and whole > len(y) else None)


def _length(loader: torch.utils.data.DataLoader, samples: int | None) -> int | None:
    try:
        n = len(loader.dataset)  # type: ignore[arg-type]
    except TypeError:  # an IterableDataset without __len__
        return samples
    return min(n, samples) if samples else n


__all__ = ["resolve_data", "place"]
