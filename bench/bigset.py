"""A larger data set for the adaptive-sampling benchmark (bench/adaptive.py), made and learned from scratch.

    python bench/bigset.py --out runs/bigset          # ~50,000 images, ResNet-20 trained on them (minutes, CPU)

The data: 50,000 three-channel 8x8 images in 10 classes by a rule a convolutional network can learn and a linear
model only partly: each class has a fixed random smooth pattern; an image is its class's pattern, shifted by up
to one pixel each way, scaled by a random contrast, plus Gaussian noise strong enough that a small fraction of
images is ambiguous (so the trained network's loss at its minimum is not zero, as on real data). Everything is
seeded: the same command gives the same images and, on the same machine and torch, the same weights.

Why 8x8 and not CIFAR's 32x32: one full evaluation of ResNet-20 on 50,000 32x32 images takes about 45 s on the
2-core development CPU (BENCHMARKS.md: ~1,100 images/s), so a full 11x11 surface would take 1.5 hours; at 8x8 the
same network and image count take minutes, and what the benchmark measures (how many samples a point needs for a
given precision) depends on the spread of the per-sample losses, not on the image size.

Writes ``OUT/data.pt`` ({"x", "y"} tensors, the images already normalized) and ``OUT/resnet20.pt`` (our
checkpoint format, ``in_channels=3``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

from landscape.checkpoints import save_checkpoint  # noqa: E402
from landscape.evaluate import loss_and_accuracy  # noqa: E402
from landscape.data import Data  # noqa: E402
from landscape.models import create_model  # noqa: E402


def make_data(n: int = 50_000, size: int = 8, classes: int = 10, noise: float = 3.0, seed: int = 0
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images (n, 3, size, size), float32, about zero mean and unit variance, and their labels."""
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(classes, 3, size + 2, size + 2, generator=g)
    # smooth patterns: a 3x3 box blur, so a one-pixel shift keeps most of a pattern's correlation with itself
    smooth = F.avg_pool2d(F.pad(raw, (1, 1, 1, 1), mode="circular"), 3, stride=1)
    smooth = smooth / smooth.flatten(1).std(1).view(-1, 1, 1, 1)
    y = torch.randint(0, classes, (n,), generator=g)
    dy = torch.randint(0, 3, (n,), generator=g)
    dx = torch.randint(0, 3, (n,), generator=g)
    rows = (dy[:, None] + torch.arange(size))[:, :, None]
    cols = (dx[:, None] + torch.arange(size))[:, None, :]
    x = smooth[y][torch.arange(n)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    contrast = 0.5 + torch.rand(n, 1, 1, 1, generator=g)
    x = contrast * x + noise * torch.randn(n, 3, size, size, generator=g)
    x = (x - x.mean()) / x.std()
    return x.contiguous(), y


def train(x: torch.Tensor, y: torch.Tensor, epochs: int, seed: int = 0, batch: int = 128, lr: float = 0.1
          ) -> torch.nn.Module:
    """ResNet-20, SGD with momentum 0.9 and weight decay 1e-4, cosine learning rate, no augmentation."""
    torch.manual_seed(seed)
    net = create_model("resnet20", num_classes=10, in_channels=3)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    steps = epochs * (len(x) // batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed + 1)
    net.train()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=g)
        for i in range(len(x) // batch):
            idx = perm[i * batch:(i + 1) * batch]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{epochs}: last batch loss {loss.item():.3f} ({time.perf_counter() - t0:.0f} s)",
              flush=True)
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/bigset")
    p.add_argument("--images", type=int, default=50_000)
    p.add_argument("--size", type=int, default=8)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    x, y = make_data(a.images, a.size, seed=a.seed)
    torch.save({"x": x, "y": y}, os.path.join(a.out, "data.pt"))
    t0 = time.perf_counter()
    net = train(x, y, a.epochs, a.seed)
    loss, acc = loss_and_accuracy(net, Data(x, y, "bigset", "train", 10), 512)
    print(f"trained in {time.perf_counter() - t0:.0f} s: loss {loss:.4f}, accuracy {acc:.2f} % on the "
          f"{len(x):,} training images")
    save_checkpoint(os.path.join(a.out, "resnet20.pt"), net, "resnet20", dataset=f"bigset:{a.images}x{a.size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
