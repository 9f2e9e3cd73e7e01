"""The device side of evaluation: which device, which precision, how many images per step.

Pure policy, no perturbation or engine: ``resolve_device``, ``precision_context`` (fp32 strict, tf32, bf16
autocast), ``default_batch_size`` by device and image size, and ``plan_gpu_step`` (batch and points per step
from free memory), each tested on its own.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn as nn

from landscape.errors import LandscapeError

PRECISIONS = ("fp32", "tf32", "bf16")
BN_MODES = ("eval", "recompute")


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu. ``cuda`` without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LandscapeError("--device cuda was requested but no CUDA GPU is visible to torch; use --device cpu "
                             "or --device auto")
    if device != "cpu" and not device.startswith("cuda"):
        raise LandscapeError(f"unknown device {device!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device(device)


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """fp32: strict float32 (TF32 off). tf32: TF32 matmuls/convs on CUDA. bf16: autocast to bfloat16."""
    if precision not in PRECISIONS:
        raise LandscapeError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        if precision == "bf16":
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


# Tokens per forward pass for sequence inputs (a language model's logits alone are tokens x vocabulary floats).
CPU_BATCH_TOKENS = 4096
GPU_BATCH_TOKENS = 65536


def default_batch_size(device: torch.device, image_shape: Sequence[int] = (3, 32, 32), tokens: int | None = None
                       ) -> int:
    """Samples per forward pass, by device and input size (on a GPU: the most, before free memory caps it).

    On 2 CPU cores (measured, resnet20/56): 512 is best for 8x8 digits, while on 32x32 images 512 falls out of
    cache and runs at half the speed of 128-256; larger images get smaller batches. On an H100 (measured,
    BENCHMARKS.md) 1,024 to 8,192 32x32 images per step ran within 7 % of each other, fastest at the large end,
    so a GPU step holds 4,096 32x32 images; smaller images get proportionally more (65,536 8x8 digits), so a
    step holds the same work. Inputs that are not images (fewer than 3 dimensions) get 512 / 4,096; sequences of
    ``tokens`` tokens get :data:`CPU_BATCH_TOKENS` / :data:`GPU_BATCH_TOKENS` tokens a step (at least one sequence,
    at most 512 / 4,096), which a GPU's free memory may lower further.
    """
    if tokens:
        per_step = GPU_BATCH_TOKENS if device.type == "cuda" else CPU_BATCH_TOKENS
        return max(1, min(4096 if device.type == "cuda" else 512, per_step // tokens))
    if len(image_shape) < 3:
        return 4096 if device.type == "cuda" else 512
    pixels = int(image_shape[-1]) * int(image_shape[-2])
    if device.type == "cuda":
        return 4096 * (32 * 32) // pixels if pixels <= 32 * 32 else 128
    if pixels <= 16 * 16:
        return 512
    return 128 if pixels <= 32 * 32 else 32


def plan_gpu_step(n_images: int, batch_size: int, bytes_per_image: float, free_bytes: float, *,
                  balance: bool = True, budget_fraction: float = 0.5, max_points: int = 64) -> tuple[int, int]:
    """Batch size and points per step on a GPU, from the data size and a measured activation footprint.

    Every grid point moves its own activations through every layer whichever engine evaluates it, so stacking K
    points cannot reduce the bytes a point costs; what it can do is give a step enough work to hide the
    launch cost of each kernel when the data is smaller than one batch. So K is 1 unless the whole data is
    less than ``batch_size`` images, and then fills the step up to that many images. Measured on an H100
    (BENCHMARKS.md): on 10,000 images vmap over 4 or 16 points ran at 0.57x of the loop, on 256 images 1.57x.

    Args:
        n_images: images in the evaluation data.
        batch_size: the images one step should hold (the default's or the user's).
        bytes_per_image: device memory one image needs in a forward pass (measured by the caller).
        free_bytes: free device memory; at most ``budget_fraction`` of it is planned for activations.
        balance: split the data into equally sized batches (one shape for cuDNN instead of a large batch and a
            small remainder); only for an automatic batch size, a user's ``--batch-size`` is kept.

    Returns:
        ``(batch, points_per_step)``.
    """
    fit = max(1, int(budget_fraction * free_bytes // max(bytes_per_image, 1.0)))
    batch = max(1, min(batch_size, n_images, fit))
    if balance:
        steps = -(-n_images // batch)
        batch = -(-n_images // steps)
    fill = max(1, batch_size // batch)  # > 1 only when the data is smaller than one step's worth
    return batch, max(1, min(max_points, fill, fit // batch))



def gpu_bytes_per_image(model: nn.Module, data, probe_images: int = 64, cost=None) -> float:
    """Peak device memory per sample of one eval-mode forward pass, measured on the first ``probe_images``
    samples of ``data`` (a :class:`~landscape.data.Data`, or an input tensor); ``cost(model, x, y)``: what a
    batch runs (default: the model's forward pass)."""
    from landscape import batching
    from landscape.data import Data

    if not isinstance(data, Data):
        data = Data(data, None, "probe", "", None, layout="inputs")
    x, y = next(data.batches(min(probe_images, len(data))))
    x, y = (batching.tree_map(lambda t: t.to(next(iter(model.parameters()), t).device), v) for v in (x, y))
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        batching.call_model(model, x) if cost is None else cost(model, x, y)
    return max(torch.cuda.max_memory_allocated() - base, 1) / batching.length(x)
