"""CLI: ``python -m landscape.hessian --ckpt MODEL.pt --out FILE.h5`` computes the Hessian's extreme eigenvalues,
eigenvectors and trace at a checkpoint (only argument parsing and printing live here; the work is
:func:`landscape.hessian.compute.compute_curvature`)."""

from __future__ import annotations

import argparse
import sys

from landscape.cli import Parser, run
from landscape.hessian.lanczos import DEFAULT_TOL
from landscape.settings import DATA_KINDS

EPILOG = """examples:
  python -m landscape.hessian --ckpt checkpoints/resnet56_digits.pt --top 5 --out plots/resnet56_hessian.h5
  python -m landscape.hessian --ckpt checkpoints/plain56_digits.pt --samples 512 --density --out plots/p56_hessian.h5
The eigenvectors are stored as direction groups (eigenvectors/0, ...) over all parameters, in parameters() order."""


def build_parser() -> Parser:
    p = Parser(prog="python -m landscape.hessian", description="Curvature of the mean training loss at a checkpoint: "
               "top-k and smallest Hessian eigenvalues (Lanczos), trace (Hutchinson), optional density (SLQ).",
               epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="trained checkpoint (our format, a state_dict, or the reference's)")
    p.add_argument("--arch", default=None, help="architecture (optional for our checkpoints), e.g. resnet56")
    p.add_argument("--model", dest="model_spec", default=None, metavar="SPEC",
                   help="any other network: torchvision:NAME, timm:NAME or MODULE:FACTORY")
    p.add_argument("--normalization", default="default", metavar="CHOICE",
                   help="default | reference | none | MEAN/STD (as landscape.plot)")
    p.add_argument("--data", default="digits", help=DATA_KINDS)
    p.add_argument("--split", default="train", choices=["train", "test"], help="data split (default train)")
    p.add_argument("--samples", type=int, default=None, help="use the first N samples (default: all)")
    p.add_argument("--batch-size", type=int, default=None, help="images per forward pass (default 512)")
    p.add_argument("--loss", default="cross_entropy", choices=["cross_entropy", "mse", "nll"],
                   help="the loss whose Hessian is taken (default cross_entropy; as landscape.plot's --loss)")
    p.add_argument("--params", default="weights", choices=["weights", "all"],
                   help="weights (default, as the reference: tensors with dim > 1) or all trainable tensors")
    p.add_argument("--top", type=int, default=1, help="number of largest eigenvalues (default 1)")
    p.add_argument("--tol", type=float, default=DEFAULT_TOL,
                   help=f"Lanczos residual tolerance relative to the largest |eigenvalue| (default {DEFAULT_TOL:g})")
    p.add_argument("--max-iter", type=int, default=None, help="most Lanczos steps, one HVP each (default max(100, 3*(top+1)+20), at most the "
                   "parameter count)")
    p.add_argument("--trace-samples", type=int, default=50,
                   help="Hutchinson probes for the trace, one HVP each (default 50; 0: skip)")
    p.add_argument("--density", action="store_true", help="also the eigenvalue density (stochastic Lanczos quadrature)")
    p.add_argument("--density-steps", type=int, default=60, help="Lanczos steps per density run (default 60)")
    p.add_argument("--density-runs", type=int, default=1, help="random start vectors for the density (default 1)")
    p.add_argument("--method", default="double_backward", choices=["double_backward", "forward_over_reverse"],
                   help="how each Hessian-vector product is computed (default double_backward)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Lanczos start vector and probes (default 0)")
    p.add_argument("--device", default="auto", help="auto (default) | cpu | cuda | cuda:N")
    p.add_argument("--trust-checkpoint", action="store_true",
                   help="allow checkpoints that need code execution to load (only for files you trust)")
    p.add_argument("--out", required=True, help="output HDF5 file")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from landscape.hessian.compute import compute_curvature
    from landscape.settings import check_seed

    check_seed(args.seed)
    res = compute_curvature(
        args.ckpt, arch=args.arch, model=args.model_spec, normalization=args.normalization, data=args.data,
        split=args.split, samples=args.samples,
        batch_size=args.batch_size, params=args.params, top=args.top, trace_samples=args.trace_samples,
        density=args.density, density_steps=args.density_steps, density_runs=args.density_runs, tol=args.tol,
        max_iter=args.max_iter, seed=args.seed, device=args.device, method=args.method, out=args.out,
        trust=args.trust_checkpoint, loss=args.loss)
    s = res.settings
    print(f"{s['arch']} on {s['n_samples']} {s['dataset']} {s['split']} images, {s['n_params']} parameters "
          f"({s['params']}); {res.hvps} HVPs in {res.seconds:.1f} s on {s['device']}")
    print("top eigenvalues: " + ", ".join(f"{v:.6g}" for v in res.eigenvalues))
    lmin, lmax = res.min_eigenvalue, res.eigenvalues[0]
    ratio = f" (|min/max| = {abs(lmin / lmax):.3g})" if lmax != 0 else ""
    print(f"smallest eigenvalue: {lmin:.6g}{ratio}")
    if not res.top.converged:
        print(f"warning: Lanczos did not reach --tol {s['tol']:g} in {res.top.iterations} steps (largest residual "
              f"{float(max(res.top.residuals.max(), res.smallest.residuals.max())):.3g}); raise --max-iter",
              file=sys.stderr)
    if res.trace is not None:
        print(f"trace: {res.trace.trace:.6g} +- {res.trace.se:.2g} (Hutchinson, {res.trace.samples.numel()} probes)")
    if res.density is not None:
        print(f"density: {res.density.grid.numel()} points on [{float(res.density.grid[0]):.4g}, "
              f"{float(res.density.grid[-1]):.4g}], sigma {res.density.sigma:.3g}")
    print(f"written: {res.path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="landscape.hessian"))
