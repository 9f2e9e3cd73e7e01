"""Roofline bounds: the images/s a device could reach on a model, from its datasheet and the model's traffic.

    python bench/roofline.py                                 # ResNet-56 / plain-56 at 32x32, ResNet-50 at 224
    python bench/roofline.py --arch resnet56 --size 32 --batch-size 1024

For each model it counts multiply-adds and activation bytes per image (``landscape.cost``) under three execution
models (eager, eager with BN folded, ideally fused) and divides each device's datasheet bandwidth and FLOP rate by
them. The smaller of the two is the bound. These are analysis, not measurements: a real engine reaches a fraction
of the bandwidth, and small-channel convolutions a smaller fraction of the tensor-core peak. ``bench/grid.py``
measures what is actually reached.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from landscape.cost import MODES, model_cost  # noqa: E402
from landscape.models import create_model, model_family  # noqa: E402

# Dense (no sparsity) peaks from NVIDIA's H100 and H200 datasheets: bandwidth in TB/s, rates in TFLOP/s.
DEVICES = {
    "H100-SXM": {"bandwidth": 3.35, "fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
    "H100-PCIe": {"bandwidth": 2.0, "fp32": 51.0, "tf32": 378.0, "bf16": 756.0},
    "H200-SXM": {"bandwidth": 4.8, "fp32": 67.0, "tf32": 494.7, "bf16": 989.4},
}
BYTES = {"fp32": 4, "tf32": 4, "bf16": 2}


def bounds(arch: str, size: int, batch_size: int, grid: int, images: int) -> list[str]:
    """Markdown rows: per device and precision, bytes/image per execution model and the images/s bound."""
    cost = model_cost(create_model(arch, num_classes=10), (3, size, size))
    forwards = grid * grid * images
    rows = [f"**{arch}** at {size}x{size}: {cost.macs / 1e6:.1f} M multiply-adds/image, "
            f"{cost.weights / 1e6:.2f} M weights; activation elements read+written per image: "
            + ", ".join(f"{m} {cost.activation_elements(m) / 1e6:.2f} M" for m in MODES)
            + f"; {grid}x{grid} grid x {images:,} images = {forwards / 1e6:.1f} M forwards.", "",
            "| device | precision | compute bound img/s | " + " | ".join(
                f"{m}: MB/img, bandwidth bound img/s" for m in MODES) + f" | best bound: img/s ({grid}x{grid} s) |",
            "|---|---|---|" + "---|" * len(MODES) + "---|"]
    for dev, spec in DEVICES.items():
        for prec in ("fp32", "tf32", "bf16"):
            compute = spec[prec] * 1e12 / (2 * cost.macs)
            cells, best = [], 0.0
            for m in MODES:
                b = cost.bytes_per_image(m, BYTES[prec], batch_size)
                bw = spec["bandwidth"] * 1e12 / b
                best = max(best, min(bw, compute))
                cells.append(f"{b / 1e6:.2f}, {bw:,.0f}")
            rows.append(f"| {dev} | {prec} | {compute:,.0f} | " + " | ".join(cells)
                        + f" | {best:,.0f} ({forwards / best:.0f} s) |")
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", action="append", help="model (repeatable); default: resnet56, plain56, resnet50")
    p.add_argument("--size", type=int, action="append", help="image size per --arch (default 32, or 224 for "
                   "ImageNet models)")
    p.add_argument("--batch-size", type=int, default=1024, help="images per batch (weights are read once per batch)")
    p.add_argument("--grid", type=int, default=51)
    p.add_argument("--images", type=int, action="append", help="images per point per --arch (default 10000, or "
                   "1000 for ImageNet models)")
    args = p.parse_args(argv)
    archs = args.arch or ["resnet56", "plain56", "resnet50"]
    for i, arch in enumerate(archs):
        imagenet = model_family(arch) == "imagenet"
        size = args.size[i] if args.size and i < len(args.size) else (224 if imagenet else 32)
        images = args.images[i] if args.images and i < len(args.images) else (1000 if imagenet else 10000)
        print("\n".join(bounds(arch, size, args.batch_size, args.grid, images)), end="\n\n")


if __name__ == "__main__":
    main()
