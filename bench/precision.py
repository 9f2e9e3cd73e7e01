"""How far each reduced precision moves a loss surface from fp32, with the GPU's operand rounding emulated.

    python bench/precision.py                      # the shipped digits ResNet-56, every point of 11x11, any device
    python bench/precision.py --ckpt resnet56.t7 --arch resnet56 --data cifar10:~/data --samples 1000 --grid 21

TF32 and bf16 tensor-core convolutions round their operands (activations and weights) to 10 and 7 explicit
mantissa bits and accumulate the products in fp32. This script rounds every convolution's and linear layer's
operands the same way (to nearest, ties to even, as torch's bf16 conversion does) and computes everything else in
strict fp32, so it isolates the error that each precision's operand rounding causes, on a CPU where TF32 does not
exist. It is an emulation, not a GPU measurement: cuDNN's conversion, its accumulation order and bf16 autocast's
bf16 activations between layers differ. It also runs the device's own bf16 autocast for comparison. The GPU
figures themselves come from ``bench/grid.py --precision tf32|bf16 --err-points 0`` (the suite's ``error`` stage).

The last line is machine-readable: ``RESULT tf32_emulated=<max rel> bf16_emulated=<max rel> bf16_autocast=<max rel>``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from landscape.checkpoints import load_checkpoint  # noqa: E402
from landscape.data import load_data  # noqa: E402
from landscape.directions import make_directions  # noqa: E402
from landscape.evaluate import PlaneEvaluator  # noqa: E402
from landscape.surface import grid_coords  # noqa: E402

MANTISSA_BITS = {"tf32": 10, "bf16": 7}


def round_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """``x`` (float32) rounded to ``bits`` explicit mantissa bits, to nearest with ties to even; same layout.

    Works on the bit pattern: add half an ulp of the shorter format (minus one, plus the kept last bit, which
    makes ties go to even) and clear the dropped bits. A carry into the exponent is the correct rounding up.
    """
    if not 1 <= bits <= 23:
        raise ValueError(f"bits must be in 1..23 (float32 keeps 23); got {bits}")
    if bits == 23:
        return x.clone()
    drop = 23 - bits
    i = x.view(torch.int32)
    keep_lsb = (i >> drop) & 1
    i = (i + ((1 << (drop - 1)) - 1) + keep_lsb) & ~((1 << drop) - 1)
    return i.view(torch.float32)


@contextlib.contextmanager
def operand_rounding(model: nn.Module, bits: int) -> Iterator[nn.Module]:
    """Inside: every Conv2d / Linear of ``model`` sees its input and weight rounded to ``bits`` mantissa bits
    (the weight only for the call: the stored one is untouched, so grid points still move it exactly)."""
    def pre(mod, args):
        mod._fp32_weight = mod.weight.data
        mod.weight.data = round_mantissa(mod.weight.data, bits)
        return (round_mantissa(args[0], bits),) + tuple(args[1:])

    def post(mod, args, out):
        mod.weight.data = mod._fp32_weight
        del mod._fp32_weight

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        yield model
    finally:
        for h in hooks:
            h.remove()


def relative_errors(losses: list[float], ref: np.ndarray) -> np.ndarray:
    """|loss / ref - 1| at the points where both are finite."""
    lo = np.asarray(losses, dtype=np.float64)
    ok = np.isfinite(lo) & np.isfinite(ref)
    return np.abs(lo[ok] / ref[ok] - 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ckpt", default="checkpoints/resnet56_digits.pt")
    ap.add_argument("--arch", default=None)
    ap.add_argument("--data", default="digits", help="a landscape.data spec (digits, cifar10:DIR, ...)")
    ap.add_argument("--samples", type=int, default=None, help="first N images (default: all)")
    ap.add_argument("--grid", type=int, default=11, help="NUM for a -1:1:NUM x -1:1:NUM grid, every point used")
    ap.add_argument("--seed", type=int, default=123, help="direction seed (the plot CLI's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    dev = torch.device(args.device)
    model, info = load_checkpoint(args.ckpt, arch=args.arch)
    data = load_data(args.data, "train", samples=args.samples, device=dev, in_channels=info["in_channels"])
    xdir, ydir = make_directions(model, seed=args.seed)
    coords = grid_coords(np.linspace(-1, 1, args.grid), np.linspace(-1, 1, args.grid))
    print(f"device {dev}  torch {torch.__version__}  {info['arch']}  {len(data)} images  {len(coords)} points  "
          f"seed {args.seed}")
    ref = np.asarray(PlaneEvaluator(model, data, xdir, ydir).evaluate(coords)[0], dtype=np.float64)
    print(f"fp32 losses: {np.nanmin(ref):.4g} .. {np.nanmax(ref):.4g}")
    result = {}
    runs = [(f"{p}_emulated", MANTISSA_BITS[p], "fp32") for p in ("tf32", "bf16")] + [("bf16_autocast", None, "bf16")]
    for label, bits, precision in runs:
        ctx = operand_rounding(model, bits) if bits else contextlib.nullcontext(model)
        with ctx:
            losses = PlaneEvaluator(model, data, xdir, ydir, precision=precision).evaluate(coords)[0]
        rel = relative_errors(losses, ref)
        over = int(np.sum(rel > 0.01))
        result[label] = float(rel.max()) if rel.size else float("nan")
        what = f"operands rounded to {bits} mantissa bits, fp32 otherwise" if bits else f"torch.autocast on {dev}"
        print(f"{label:14s} ({what}): max rel {result[label]:.3e}, median {np.median(rel):.2e}, "
              f"{over} of {rel.size} points above 1 %")
    print("RESULT " + " ".join(f"{k}={v:.3e}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
