"""Evaluation of loss and accuracy at grid points theta* + alpha*delta + beta*eta.

Everything stays on the evaluation device: theta*, delta and eta are copied there once, each point's weights
are built there (never on the CPU and copied over), and the data was put there once by ``landscape.data``.
No DataLoader: batches are slices of a resident tensor.

The engine here sets one point's weights into the model and runs the data through it. On the CPU a plain loop
over points measured faster than ``vmap`` over stacked parameter sets, so it is the CPU engine. Two optional
speed-ups keep the numbers (to float rounding): BN folded into the convolutions (``landscape.fold``) and
``torch.compile``; on 2 CPU cores neither paid at the demo's sizes, so both are off unless asked for.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from landscape.data import Data
from landscape.directions import perturbed_tensors
from landscape.errors import LandscapeError
from landscape.fold import fold_batchnorm, named_tensors

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


def default_batch_size(device: torch.device, image_shape: Sequence[int] = (3, 32, 32)) -> int:
    """Images per forward pass, by device and image size (on a GPU: the most, before free memory caps it).

    On 2 CPU cores (measured, resnet20/56): 512 is best for 8x8 digits, while on 32x32 images 512 falls out of
    cache and runs at half the speed of 128-256; larger images get smaller batches. On a GPU the small
    convolutions of the CIFAR nets are memory-bound and short: at 1,024 32x32 images a 64-channel 8x8 layer writes
    17 MB in fp32 (5 us at an H100's 3.35 TB/s), no longer than eager PyTorch takes to launch it, so 4,096 images
    per step keep the GPU, not the launching CPU thread, the bottleneck (reasoned, not yet measured on a GPU);
    smaller images get proportionally more (65,536 8x8 digits), so a step holds the same work.
    """
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
    less than ``batch_size`` images, and then fills the step up to that many images (the vmap engine measured
    0.35-0.54x of the loop on the CPU, where nothing is gained by it).

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


@torch.no_grad()
def loss_and_accuracy(model: nn.Module, data: Data, batch_size: int = 512, precision: str = "fp32"
                      ) -> tuple[float, float]:
    """Mean cross-entropy and accuracy (percent) of ``model`` as it is now, over all of ``data``.

    The sum of per-sample losses is accumulated in float64 on the device and read back once, so a point costs
    one host synchronisation, not one per batch.
    """
    total, correct = _loss_sums(model, data, batch_size, precision)
    n = len(data)
    return float(total.item()) / n, 100.0 * float(correct.item()) / n


def _loss_sums(model: nn.Module, data: Data, batch_size: int, precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy (float64) and number correct, left on the device (no host synchronisation)."""
    device = data.x.device
    total = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    with precision_context(precision, device):
        for i in range(0, len(data), batch_size):
            x, y = data.x[i:i + batch_size], data.y[i:i + batch_size]
            logits = model(x).float()
            total += F.cross_entropy(logits, y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
    return total, correct


@torch.no_grad()
def recompute_bn_statistics(model: nn.Module, data: Data, batch_size: int = 512, precision: str = "fp32") -> None:
    """Replace every BN layer's running mean/var by statistics of ``data`` under the current weights.

    One pass in training mode with cumulative averaging (``momentum=None``), as ``torch.optim.swa_utils.update_bn``
    and the mode-connectivity literature do: the running values are the average of the per-batch statistics
    (exactly the data's statistics when one batch holds all the data), then the model returns to eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        with precision_context(precision, data.x.device):
            for i in range(0, len(data), batch_size):
                model(data.x[i:i + batch_size])
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        model.eval()


class PlaneEvaluator:
    """Evaluates L(theta* + a*dx + b*dy) at many (a, b), on the data's device.

    Two engines, same numbers (to float rounding):

    * ``points_per_step=1`` (the loop engine): one point's weights are written into the model's own tensors,
      then the resident data runs through it. Fastest on the CPU (measured; vmap was slower there) and the GPU
      default whenever the data fills a batch (see :func:`plan_gpu_step` for why).
    * ``points_per_step=K > 1`` (the batched engine): K parameter sets theta* + a_k*dx + b_k*dy are stacked on
      the device and evaluated together with ``torch.func.functional_call`` + ``vmap``; the data loop is
      outside and the block of points inside, so each batch of data is read once per block. An out-of-memory
      error halves K (then the batch) and retries instead of failing.

    Args:
        model: the trained network (moved to ``data``'s device; left as it came in after every call).
        data: evaluation data, already on the device.
        xdir, ydir: directions (lists of tensors in ``dir_type`` order); ``ydir`` may be ``None`` (1D).
        dir_type: ``weights`` or ``states``.
        batch_size, precision, bn_mode: see the CLI's ``--batch-size``, ``--precision``, ``--bn``. ``None``
            batch size: :func:`default_batch_size`, on a GPU capped by free memory and balanced across the data.
        points_per_step: K as above; ``None`` picks 1, except on a GPU when the data is smaller than one batch
            (then K fills the step, within free memory; see :func:`plan_gpu_step`).
        fold_bn: evaluate a copy of the network with each conv -> BN pair folded into one conv, refolded for
            every point from its own weights and BN statistics (``landscape.fold``). Same numbers to float
            rounding, fewer bytes moved; off by default because on the CPU it measured no faster.
        compile_model: run the evaluation forward passes through ``torch.compile`` (compiled once, on the first
            point; weights change in place so later points reuse it). It fuses BN, ReLU and additions into the
            convolutions' neighbours; it costs a one-off compile (about a minute on 2 CPU cores) and pays on
            large grids. BN recompute passes stay eager.
    """

    def __init__(self, model: nn.Module, data: Data, xdir: Sequence[torch.Tensor],
                 ydir: Sequence[torch.Tensor] | None = None, dir_type: str = "weights", batch_size: int | None = None,
                 precision: str = "fp32", bn_mode: str = "eval", points_per_step: int | None = None,
                 fold_bn: bool = False, compile_model: bool = False):
        if bn_mode not in BN_MODES:
            raise LandscapeError(f"unknown BN mode {bn_mode!r}; valid: {', '.join(BN_MODES)}")
        if precision not in PRECISIONS:
            raise LandscapeError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
        if points_per_step is not None and points_per_step < 1:
            raise LandscapeError(f"--points-per-step must be >= 1; got {points_per_step}")
        self.device = data.x.device
        self.model = model.to(self.device).eval()
        # NHWC: cuDNN's fast path for these small convolutions (and what bf16 tensor cores want); on 2 CPU cores
        # oneDNN measured 1.34x (digits ResNet-56) to 1.65x (plain-56, 32x32) faster with it too. Results differ
        # from NCHW by float rounding (~1e-7); the model is left in this format.
        self.model = self.model.to(memory_format=torch.channels_last)
        data = Data(data.x.contiguous(memory_format=torch.channels_last), data.y, data.name, data.split,
                    data.num_classes, data.mean, data.std)
        self.data, self.precision, self.bn_mode = data, precision, bn_mode
        self.batch_size = batch_size or default_batch_size(self.device, tuple(data.x.shape[1:]))
        self.points_per_step = points_per_step or 1  # the CPU engine: the loop measured fastest there
        if self.device.type == "cuda" and (batch_size is None or points_per_step is None):
            batch, k = plan_gpu_step(len(data), self.batch_size, gpu_bytes_per_image(self.model, data),
                                     torch.cuda.mem_get_info()[0], balance=batch_size is None)
            self.batch_size, self.points_per_step = batch, points_per_step or k
        names, tensors = perturbed_tensors(self.model, dir_type)
        if len(xdir) != len(tensors) or (ydir is not None and len(ydir) != len(tensors)):
            raise LandscapeError(f"direction has {len(xdir)} tensors but the model has {len(tensors)} ({dir_type})")
        zeros = [None] * len(tensors)
        self._moved = []  # (name, live tensor, theta*, dx, dy): only tensors some direction actually moves
        for name, t, dx, dy in zip(names, tensors, xdir, ydir if ydir is not None else zeros):
            if not t.is_floating_point():
                continue
            nz = bool(dx.count_nonzero()) or (dy is not None and bool(dy.count_nonzero()))
            if nz:
                dev = lambda d: (d.to(self.device, t.dtype) if d is not None else torch.zeros_like(t))  # noqa: E731
                self._moved.append((name, t, t.detach().clone(), dev(dx), dev(dy)))
        # BN recompute overwrites the running statistics; keep theta*'s so restore() is exact.
        self._state0 = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self._folded = fold_batchnorm(self.model) if fold_bn else None
        self.compile_model = compile_model
        self._runners: dict[str, object] = {}

    @torch.no_grad()
    def set_point(self, a: float, b: float = 0.0) -> None:
        """Move the model to theta* + (a*dx + b*dy), computed on the device in the reference's order."""
        for _, t, w, dx, dy in self._moved:
            step = dx * a
            step.add_(dy, alpha=b)
            torch.add(w, step, out=t.data)

    @torch.no_grad()
    def restore(self) -> None:
        """Put theta* (weights and BN buffers) back into the model."""
        for k, v in self.model.state_dict().items():
            v.copy_(self._state0[k])

    def evaluate(self, coords: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
        """Loss and accuracy at each (a, b); a diverged point returns its inf/NaN loss as it is."""
        coords = [(float(a), float(b)) for a, b in coords]
        losses: list[float] = []
        accs: list[float] = []
        # A grid repeats the same few shapes thousands of times: let cuDNN time its algorithms once per shape
        # instead of trusting its heuristics (no effect on the CPU).
        benchmark, torch.backends.cudnn.benchmark = torch.backends.cudnn.benchmark, True
        try:
            i = 0
            while i < len(coords):
                batched = self.points_per_step > 1
                # the loop engine takes all the points at once: it reads its results back once, at the end
                k = min(self.points_per_step, len(coords) - i) if batched else len(coords) - i
                try:
                    lo, ac = self._batched(coords[i:i + k]) if batched else self._loop(coords[i:i + k])
                except torch.cuda.OutOfMemoryError:
                    self._shrink()
                    continue
                except LandscapeError:
                    raise
                except Exception as e:
                    if not self.compile_model:
                        raise
                    # Compilation happens on the first call (inductor needs a C++ compiler on the CPU, Triton
                    # on a GPU); its failures are long tracebacks, so say what failed and how to avoid it.
                    first = (str(e).strip().splitlines() or [""])[0][:200]
                    raise LandscapeError(f"torch.compile failed ({type(e).__name__}: {first}); run without "
                                         "--compile") from e
                losses += lo
                accs += ac
                i += k
        finally:
            # The model leaves every call as it came in (theta*), whatever happened, so a caller holding the
            # same model object (a notebook, the next surface) never sees perturbed weights.
            self.restore()
            torch.backends.cudnn.benchmark = benchmark
        return losses, accs

    def _shrink(self) -> None:
        """After an out-of-memory error: halve the points per step, then the batch; give up below 1 image."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.points_per_step > 1:
            self.points_per_step //= 2
        elif self.batch_size > 1:
            self.batch_size //= 2
        else:
            raise LandscapeError("out of device memory even with one point and one image per step; use a smaller "
                                 "model or input, or --device cpu")

    @torch.no_grad()
    def _loop(self, coords: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
        # The sums stay on the device until the block ends: one host synchronisation per block, not per point,
        # so on a GPU the next point's weight update is queued while this point's batches still run (in stream
        # order, so it never overtakes them).
        sums = []
        for a, b in coords:
            self.set_point(a, b)
            if self.bn_mode == "recompute":
                recompute_bn_statistics(self.model, self.data, self.batch_size, self.precision)
            if self._folded is not None:
                self._folded.load_from(self.model)
            sums.append(_loss_sums(self._runner("loop"), self.data, self.batch_size, self.precision))
        n = len(self.data)
        # one read-back for the block (counts are exact in float64)
        both = torch.stack([torch.stack([t, c.double()]) for t, c in sums]).tolist()
        return [t / n for t, _ in both], [100.0 * c / n for _, c in both]

    @torch.no_grad()
    def _batched(self, coords: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
        """K points at once: stacked parameter sets, vmap over them, the data read once per block."""
        n_real = len(coords)
        if self.compile_model and n_real < self.points_per_step:
            # A shorter stack is a new shape, i.e. a recompile (tens of seconds); a few repeated points cost less.
            coords = coords + [coords[-1]] * (self.points_per_step - n_real)
        k = len(coords)
        a = torch.tensor([c[0] for c in coords], device=self.device, dtype=torch.float32)
        b = torch.tensor([c[1] for c in coords], device=self.device, dtype=torch.float32)
        stacked = {}
        for name, _, w, dx, dy in self._moved:
            shape = (k,) + (1,) * w.dim()
            step = dx.unsqueeze(0) * a.view(shape).to(w.dtype)
            step += dy.unsqueeze(0) * b.view(shape).to(w.dtype)
            stacked[name] = w.unsqueeze(0) + step
        shared = {n: t for n, t in named_tensors(self.model).items() if n not in stacked}
        if self.bn_mode == "recompute":
            stacked.update(self._recomputed_bn_stats(stacked, shared, k))
            shared = {n: t for n, t in shared.items() if n not in stacked}
        if self._folded is not None:
            net = self._folded.module
            own = named_tensors(net)
            folded = self._folded.parameters_from({**shared, **stacked})
            # A folded tensor is stacked (one per point) when any tensor it was folded from was.
            stacked = {n: t for n, t in folded.items() if t.dim() > own[n].dim()}
            shared = {n: t for n, t in folded.items() if n not in stacked}
        fwd = self._runner("batched")
        total = torch.zeros(k, dtype=torch.float64, device=self.device)
        correct = torch.zeros(k, dtype=torch.int64, device=self.device)
        n = len(self.data)
        with precision_context(self.precision, self.device):
            for i in range(0, n, self.batch_size):
                x, y = self.data.x[i:i + self.batch_size], self.data.y[i:i + self.batch_size]
                logits = fwd(stacked, shared, x).float()  # (K, B, classes)
                ce = F.cross_entropy(logits.flatten(0, 1), y.repeat(k), reduction="none").view(k, -1)
                total += ce.sum(1, dtype=torch.float64)
                correct += (logits.argmax(2) == y).sum(1)
        return (total / n).tolist()[:n_real], (100.0 * correct.double() / n).tolist()[:n_real]

    def _runner(self, engine: str):
        """The network's evaluation forward for ``engine`` (``loop``: the module; ``batched``: ``vmap`` of
        ``functional_call`` over stacked parameter sets), built once and compiled when ``compile_model``."""
        if engine not in self._runners:
            from torch.func import functional_call, vmap

            net = self._folded.module if self._folded is not None else self.model
            if engine == "loop":
                run = net
            else:
                def forward(p, s, x):
                    return functional_call(net, {**p, **s}, (x,))

                # All tensors come in as arguments (none captured), so a compiled version is reused across blocks.
                run = vmap(forward, in_dims=(0, None, None))
            self._runners[engine] = torch.compile(run) if self.compile_model else run
        return self._runners[engine]

    def _recomputed_bn_stats(self, stacked: dict, shared: dict, k: int) -> dict:
        """Per-point BN running statistics from one training-mode pass of the data, all K points together.

        The running buffers are stacked (K, C) and updated in place under vmap with cumulative averaging, exactly
        as :func:`recompute_bn_statistics` does for one point.
        """
        from torch.func import functional_call, vmap

        bns = {n: m for n, m in self.model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
        stats = {}
        for n, m in bns.items():
            stats[f"{n}.running_mean"] = torch.zeros((k,) + m.running_mean.shape, device=self.device)
            stats[f"{n}.running_var"] = torch.ones((k,) + m.running_var.shape, device=self.device)
        counters = {f"{n}.num_batches_tracked": torch.zeros((), dtype=torch.long, device=self.device)
                    for n in bns}
        rest = {n: t for n, t in shared.items() if n not in stats and n not in counters}
        momenta = {n: m.momentum for n, m in bns.items()}
        for m in bns.values():
            m.momentum = None
        self.model.train()
        try:
            def forward(p, s, x):
                return functional_call(self.model, {**p, **s, **counters, **rest}, (x,))

            fwd = vmap(forward, in_dims=(0, 0, None))
            with precision_context(self.precision, self.device):
                for i in range(0, len(self.data), self.batch_size):
                    fwd(stacked, stats, self.data.x[i:i + self.batch_size])
        finally:
            for n, m in bns.items():
                m.momentum = momenta[n]
            self.model.eval()
        return stats


def gpu_bytes_per_image(model: nn.Module, data: Data, probe_images: int = 64) -> float:
    """Peak device memory per image of one eval-mode forward pass, measured on the first ``probe_images``."""
    probe = data.x[: min(probe_images, len(data))]
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        model(probe)
    return max(torch.cuda.max_memory_allocated() - base, 1) / len(probe)
