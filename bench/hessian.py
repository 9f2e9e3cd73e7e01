"""Benchmark: the cost of one Hessian-vector product relative to one forward pass and one forward+backward.

    python bench/hessian.py                                  # the shipped digits ResNet-56, 512 images, CPU
    python bench/hessian.py --ckpt checkpoints/resnet20_digits.pt --samples 1437 --device cuda

Times, on the same model, data (resident tensors, one batch unless --batch-size) and device, fp32, eval-mode BN:
  forward           the mean loss under no_grad (what a loss-surface point costs)
  forward+backward  the gradient of the mean loss with respect to the selected parameters
  HVP (double bwd)  landscape.hessian.HessianOperator.matvec, autograd.grad with create_graph, twice
  HVP (fwd-over-rev) the same product by torch.func.jvp of torch.func.grad
  Lanczos overhead  one step's full reorthogonalization against a basis of --basis vectors (no HVP)
  with --batched K: K HVPs at K different points in one vmap-batched call (landscape.hessian.batched, what
  --eigen-points K uses) against K one-point HVPs (fwd-over-rev) at the same points
Each is the median of --reps runs after one warm-up run. The last line is machine-readable:
RESULT hvp_over_forward=<x> hvp_over_fwd_bwd=<y> (for the faster HVP method) [batched_speedup=<K single / batched>].
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from landscape.checkpoints import load_checkpoint  # noqa: E402
from landscape.data import load_data  # noqa: E402
from landscape.evaluate import resolve_device  # noqa: E402
from landscape.hessian import HessianOperator  # noqa: E402
from landscape.hessian.batched import StackedHessians  # noqa: E402


def timed(fn, device: torch.device, reps: int) -> float:
    """Median seconds of ``fn()`` over ``reps`` runs, after one warm-up run (allocator, kernels, autotuning)."""
    fn()
    out = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default="checkpoints/resnet56_digits.pt")
    p.add_argument("--data", default="digits")
    p.add_argument("--samples", type=int, default=512)
    p.add_argument("--batch-size", type=int, default=None, help="default: all samples in one batch")
    p.add_argument("--params", default="weights", choices=["weights", "all"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--basis", type=int, default=50, help="Lanczos basis size for the reorthogonalization timing")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--batched", type=int, default=0, metavar="K",
                   help="also time K points' HVPs in one batched call against K single ones")
    p.add_argument("--channels-last", action="store_true",
                   help="model and images in channels_last (the surface engine's CPU layout)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    model, info = load_checkpoint(args.ckpt)
    model = model.to(dev).eval()
    data = load_data(args.data, "train", samples=args.samples, device=dev, in_channels=info["in_channels"])
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
        data.x = data.x.contiguous(memory_format=torch.channels_last)
    bs = args.batch_size or len(data)
    ops = {m: HessianOperator(model, data.x, data.y, params=args.params, batch_size=bs, method=m)
           for m in ("double_backward", "forward_over_reverse")}
    op = ops["double_backward"]
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(0)).to(dev)

    rows = [("forward", timed(op.loss, dev, args.reps)),
            ("forward+backward", timed(op.gradient, dev, args.reps)),
            ("HVP (double bwd)", timed(lambda: ops["double_backward"].matvec(v), dev, args.reps)),
            ("HVP (fwd-over-rev)", timed(lambda: ops["forward_over_reverse"].matvec(v), dev, args.reps))]
    basis = torch.randn(args.basis, op.dim, device=dev)

    def reorth() -> None:
        w = v.clone()
        for _ in range(2):
            w = w - basis.T @ (basis @ w)

    rows.append((f"Lanczos reorth ({args.basis} vectors)", timed(reorth, dev, args.reps)))

    speed = ""
    if args.batched > 1:
        k, g = args.batched, torch.Generator().manual_seed(1)
        live = dict(model.named_parameters())
        shifts = [{n: 0.01 * torch.randn(live[n].shape, generator=g).to(dev) for n in op.names} for _ in range(k)]
        stacked = StackedHessians(model, data.x, data.y, params=args.params, batch_size=bs)
        stacked.set_points({n: torch.stack([live[n].detach() + s[n] for s in shifts]) for n in op.names})
        V = torch.randn(k, op.dim, generator=g).to(dev)
        singles = []
        for s_ in shifts:
            m = __import__("copy").deepcopy(model)
            with torch.no_grad():
                for n, prm in m.named_parameters():
                    if n in s_:
                        prm.add_(s_[n])
            singles.append(HessianOperator(m, data.x, data.y, params=args.params, batch_size=bs,
                                           method="forward_over_reverse"))
        t_single = timed(lambda: [o.matvec(V[i]) for i, o in enumerate(singles)], dev, args.reps)
        t_batched = timed(lambda: stacked.matvec(V), dev, args.reps)
        rows += [(f"{k} HVPs, one point each", t_single), (f"{k} HVPs, batched (vmap)", t_batched)]
        speed = f" batched_speedup={t_single / t_batched:.2f}"

    print(f"{info['arch']}: {op.dim} parameters ({args.params}), {len(data)} {data.name} images, batch {bs}, "
          f"{dev}{', channels_last' if args.channels_last else ''}, {torch.get_num_threads()} threads, torch {torch.__version__}, median of {args.reps}")
    fwd, fb = rows[0][1], rows[1][1]
    print(f"{'':34s} {'ms':>9s} {'x forward':>10s} {'x fwd+bwd':>10s}")
    for name, s in rows:
        print(f"{name:34s} {s * 1e3:9.1f} {s / fwd:10.2f} {s / fb:10.2f}")
    best = min(rows[2][1], rows[3][1])
    print(f"RESULT hvp_over_forward={best / fwd:.2f} hvp_over_fwd_bwd={best / fb:.2f}{speed}")


if __name__ == "__main__":
    main()
