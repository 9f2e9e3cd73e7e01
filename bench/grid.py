"""Benchmark: the reference algorithm vs our engine vs the forward-pass ceiling, in one run.

    python bench/grid.py --arch resnet56 --images 10000 --size 32 --grid 51 --precision bf16     # on a GPU
    python bench/grid.py --arch resnet20 --images 256 --size 32 --grid 3 --ref-points 2 --device cpu  # smoke test

Prints, for the same device, model, grid, data and precision:
  (a) the reference algorithm of Li et al., re-implemented faithfully: per point, theta* + a*dx + b*dy built from
      CPU tensors and copied into the model, then a DataLoader pass (batch 128, 2 worker processes, uint8 images
      with per-sample ToTensor + Normalize), fp32. It times --ref-points points and scales to the grid (said so).
  (b) our engine (landscape.evaluate.PlaneEvaluator) over the whole grid.
  (c) the forward-pass ceiling: as many image-forwards through the same model as (b) makes, in a tight loop at the
      best batch size, same precision, no perturbation.
and points/s, images/s, the speed-up of (b) over (a), the fraction of (c), achieved TFLOP/s, and the largest
relative difference of (b) from an fp32 loop evaluation on a random subset of points. The last line is
machine-readable: RESULT speedup=<x> ceiling_fraction=<y> max_rel_err=<z>
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from landscape.cost import model_cost  # noqa: E402
from landscape.checkpoints import load_checkpoint  # noqa: E402
from landscape.data import CIFAR10_MEAN, CIFAR10_STD, Data, load_data  # noqa: E402
from landscape.directions import make_directions  # noqa: E402
from landscape.evaluate import PlaneEvaluator, precision_context  # noqa: E402
from landscape.models import create_model  # noqa: E402
from landscape.surface import grid_coords  # noqa: E402


class Timer:
    """Wall time with CUDA events on a GPU (after a synchronize), perf_counter on the CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            self.end.record()
            torch.cuda.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1000
        else:
            self.seconds = time.perf_counter() - self.t0


class UInt8Images(torch.utils.data.Dataset):
    """CIFAR-style dataset as the reference reads it: uint8 HWC images, per-sample ToTensor + Normalize."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        from torchvision import transforms

        self.images, self.labels = images, labels
        self.tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.tf(self.images[i]), int(self.labels[i])


def reference_point(model, weights_cpu, dx_cpu, dy_cpu, a, b, loader, device) -> tuple[float, float]:
    """One point the reference's way: weights built on the CPU, copied over, a DataLoader pass."""
    with torch.no_grad():
        for p, w, d0, d1 in zip(model.parameters(), weights_cpu, dx_cpu, dy_cpu):
            p.data = (w + (d0 * a + d1 * b)).to(device)  # net_plotter.set_weights
    model.eval()
    total_loss, correct, total = 0.0, 0, 0
    with torch.no_grad():
        for x, y in loader:  # evaluation.eval_loss
            x, y = x.to(device), y.to(device)
            out = model(x)
            total_loss += F.cross_entropy(out, y).item() * x.size(0)
            correct += out.max(1)[1].eq(y).sum().item()
            total += x.size(0)
    return total_loss / total, 100.0 * correct / total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="resnet56", help="a freshly initialized registry model (or see --ckpt)")
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--size", type=int, default=32, help="image side (32 CIFAR, 224 ImageNet)")
    ap.add_argument("--grid", type=int, default=11, help="NUM for a -1:1:NUM x -1:1:NUM grid")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--batch-size", type=int, default=None, help="engine batch (default: the engine's)")
    ap.add_argument("--points-per-step", type=int, default=None, help="engine K (default: automatic)")
    ap.add_argument("--ref-points", type=int, default=4, help="points timed for (a), then scaled to the grid")
    ap.add_argument("--err-points", type=int, default=16,
                    help="random points re-evaluated in fp32 for the error; 0 = every point of the grid")
    ap.add_argument("--fold-bn", action="store_true", help="engine folds eval-mode BN into the convolutions")
    ap.add_argument("--compile", action="store_true", help="engine runs torch.compile'd forwards (compile time is "
                    "reported with the warm-up, not in (b))")
    ap.add_argument("--json", default=None, help="append this run's figures as one JSON line to this file")
    ap.add_argument("--skip-ref", action="store_true", help="skip (a) (e.g. for scaling tables)")
    ap.add_argument("--ckpt", default=None, help="a trained checkpoint instead of a freshly initialized --arch "
                    "(precision errors are largest near a trained minimum); needs --skip-ref")
    ap.add_argument("--data", default="digits", help="with --ckpt: evaluation data (a landscape.data spec); "
                    "--images caps how many images are used")
    args = ap.parse_args()
    if args.ckpt and not args.skip_ref:
        ap.error("--ckpt needs --skip-ref: the reference re-implementation (a) reads CIFAR-shaped uint8 images")

    dev = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    torch.manual_seed(0)
    if args.ckpt:
        model, info = load_checkpoint(args.ckpt)
        data = load_data(args.data, "train", samples=args.images, device=dev, in_channels=info["in_channels"])
        args.arch, args.images, args.size = info["arch"], len(data), int(data.x.shape[-1])
    else:
        rng = np.random.RandomState(0)
        images = rng.randint(0, 256, size=(args.images, args.size, args.size, 3), dtype=np.uint8)
        labels = rng.randint(0, 10, size=args.images).astype(np.int64)
        model = create_model(args.arch, num_classes=10)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
        mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)
        data = Data(((x - mean) / std).contiguous().to(dev), torch.from_numpy(labels).to(dev), "bench", "train", 10,
                    CIFAR10_MEAN, CIFAR10_STD)
    model.eval()
    xdir, ydir = make_directions(model, seed=123)
    coords = grid_coords(np.linspace(-1, 1, args.grid), np.linspace(-1, 1, args.grid))
    n_pts = len(coords)
    cost = model_cost(model, tuple(data.x.shape[1:]))
    macs = cost.macs
    print(f"device: {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}  torch {torch.__version__}  "
          f"model {args.arch}  images {args.images}x{args.size}x{args.size}  grid {args.grid}x{args.grid}  "
          f"precision {args.precision}  MACs/image {macs / 1e6:.1f} M  activation MB/image (eager, folded): "
          + ", ".join(f"{cost.bytes_per_image(m, 2 if args.precision == 'bf16' else 4) / 1e6:.2f}"
                      for m in ("eager", "folded")))

    # (b) our engine, after a warm-up block (allocator, cuDNN autotuning)
    ev = PlaneEvaluator(model, data, xdir, ydir, batch_size=args.batch_size, precision=args.precision,
                        points_per_step=args.points_per_step, fold_bn=args.fold_bn, compile_model=args.compile)
    with Timer(dev) as tw:
        ev.evaluate(coords[: ev.points_per_step])
    print(f"(b) warm-up    : {tw.seconds:9.2f} s for {ev.points_per_step} point(s) (allocator, cuDNN autotuning"
          + (", torch.compile" if args.compile else "") + "; not in (b))")
    with Timer(dev) as tb:
        losses, _ = ev.evaluate(coords)
    b_pps = n_pts / tb.seconds
    b_ips = b_pps * args.images
    print(f"(b) engine     : {tb.seconds:9.2f} s  {b_pps:10.2f} points/s  {b_ips:12.0f} images/s  "
          f"K={ev.points_per_step} batch={ev.batch_size} fold_bn={args.fold_bn} compile={args.compile}  "
          f"{2 * macs * b_ips / 1e12:.2f} TFLOP/s")

    # (c) forward-pass ceiling: the same number of image-forwards, best batch size, no perturbation; with cuDNN's
    # algorithm autotuning on, as the engine runs (PlaneEvaluator.evaluate turns it on)
    torch.backends.cudnn.benchmark = True
    m = ev.model
    best = None
    # the engine's own batch is a candidate too (on a GPU it can be the whole data, balanced)
    sizes = {b for b in (128, 256, 512, 1024, 2048, 4096) if b <= len(data)} | {min(ev.batch_size, len(data))}
    for bs in sorted(sizes):
        try:
            with torch.no_grad(), precision_context(args.precision, dev):
                m(data.x[:bs])
                with Timer(dev) as t:
                    for _ in range(3):
                        m(data.x[:bs])
            rate = 3 * bs / t.seconds
            best = max(best or (0, 0), (rate, bs))
        except torch.cuda.OutOfMemoryError:
            break
    bs = best[1]
    total_images = n_pts * args.images
    reps = max(1, total_images // bs)
    xb = data.x[:bs]
    with torch.no_grad(), precision_context(args.precision, dev), Timer(dev) as tc:
        for _ in range(reps):
            m(xb)
    c_ips = reps * bs / tc.seconds
    torch.backends.cudnn.benchmark = False  # the reference below runs with PyTorch's default
    print(f"(c) ceiling    : {tc.seconds:9.2f} s  {c_ips / args.images:10.2f} points/s  {c_ips:12.0f} images/s  "
          f"batch={bs}  {2 * macs * c_ips / 1e12:.2f} TFLOP/s")

    # (a) the reference algorithm on a subset of points, scaled
    a_pps = float("nan")
    if not args.skip_ref:
        ref_model = create_model(args.arch, num_classes=10).to(dev)
        ref_model.load_state_dict(model.state_dict())
        weights_cpu = [p.detach().cpu().clone() for p in model.parameters()]
        loader = torch.utils.data.DataLoader(UInt8Images(images, labels), batch_size=128, shuffle=False,
                                             num_workers=2)
        k = min(args.ref_points, n_pts)
        reference_point(ref_model, weights_cpu, xdir, ydir, 0.0, 0.0, loader, dev)  # warm-up
        with Timer(dev) as ta:
            for a, b in coords[:k]:
                reference_point(ref_model, weights_cpu, xdir, ydir, float(a), float(b), loader, dev)
        a_pps = k / ta.seconds
        print(f"(a) reference  : {ta.seconds:9.2f} s for {k} of {n_pts} points (timed subset, scaled: "
              f"{n_pts / a_pps:.1f} s for the grid)  {a_pps:10.3f} points/s  {a_pps * args.images:12.0f} images/s")

    # error of (b) against an fp32 loop evaluation on a random subset of points
    n_err = n_pts if args.err_points <= 0 else min(args.err_points, n_pts)
    pick = np.sort(np.random.RandomState(1).choice(n_pts, size=n_err, replace=False))
    # The fp32 reference uses the loop engine unfolded: the plain definition of the surface.
    ref32 = PlaneEvaluator(model, data, xdir, ydir, precision="fp32", points_per_step=1)
    l32, _ = ref32.evaluate(coords[pick])
    lb = np.asarray(losses)[pick]
    l32 = np.asarray(l32)
    ok = np.isfinite(l32) & np.isfinite(lb)
    rel = np.abs(lb[ok] / l32[ok] - 1)
    max_rel = float(np.max(rel)) if ok.any() else float("nan")
    over = int(np.sum(rel > 0.01))
    print(f"max relative difference from fp32 on {len(pick)} random points: {max_rel:.3e} ({over} above 1%"
          + (f", at fp32 losses {np.round(l32[ok][rel > 0.01][:6], 4).tolist()}" if over else "") + ")")
    speedup = b_pps / a_pps if a_pps == a_pps else float("nan")
    print(f"speed-up over (a): {speedup:.1f}x   fraction of ceiling (c): {b_ips / c_ips:.3f}")
    if args.json:
        record = {k: v for k, v in vars(args).items() if k != "json"}
        record.update(device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                      torch=torch.__version__, date=time.strftime("%Y-%m-%d"), command=" ".join(sys.argv),
                      points=n_pts, engine_s=tb.seconds, engine_images_per_s=b_ips, ceiling_images_per_s=c_ips,
                      ceiling_batch=bs, reference_points_per_s=a_pps, speedup=speedup,
                      ceiling_fraction=b_ips / c_ips, max_rel_err=max_rel, err_points=len(pick), err_over_1pct=over,
                      K=ev.points_per_step, batch=ev.batch_size, warmup_s=tw.seconds, tflops=2 * macs * b_ips / 1e12)
        with open(args.json, "a") as f:
            f.write(json.dumps(record) + "\n")
    print(f"RESULT speedup={speedup:.2f} ceiling_fraction={b_ips / c_ips:.3f} max_rel_err={max_rel:.3e}")


if __name__ == "__main__":
    main()
