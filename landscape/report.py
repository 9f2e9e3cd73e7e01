"""CLI: ``python -m landscape.report degradation RUN...`` and ``... responses CKPT...``.

``degradation``: training and test error per epoch of plain and residual nets (He et al. Fig. 1/6), from the
histories saved in the checkpoints of ``landscape.train``. ``responses``: the standard deviation of each 3x3
layer's response, after BN and before the addition/ReLU, for plain and residual nets (He et al. Fig. 7).
"""

from __future__ import annotations

import os
import sys

import torch
import torch.nn as nn

from landscape.checkpoints import load_checkpoint
from landscape.cli import Parser, run
from landscape.data import load_data
from landscape.errors import LandscapeError
from landscape.paths import check_name, ensure_writable_dir, shown


def _checkpoint_of(run: str) -> str:
    """A run folder means its ``final.pt``; a file is taken as it is."""
    if os.path.isdir(run):
        p = os.path.join(run, "final.pt")
        if not os.path.exists(p):
            raise LandscapeError(f"{run!r} has no final.pt; pass a run folder of landscape.train or a checkpoint")
        return p
    return run


def load_histories(runs: list[str], trust: bool = False) -> dict[str, dict]:
    """label (the architecture, made unique) -> per-epoch history from each run's checkpoint."""
    out: dict[str, dict] = {}
    for r in runs:
        path = _checkpoint_of(r)
        _, info = load_checkpoint(path, trust=trust)
        h = info.get("history")
        if not h or not h.get("test_err"):
            raise LandscapeError(f"{path!r} holds no training history (train_err/test_err per epoch); it must come "
                                 "from landscape.train")
        label = info["arch"]
        while label in out:
            label += "'"
        out[label] = {k: [float(v) for v in h[k]] for k in ("train_err", "test_err")}
    return out


@torch.no_grad()
def layer_responses(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> list[float]:
    """Std of every 3x3 conv layer's response after its BN (before ReLU / the addition), over ``x``.

    The layers are the stem and both convolutions of every BasicBlock (the 3x3 convolutions of Bottlenecks),
    in forward order, as He et al. Fig. 7 counts them. Stds come from sums and sums of squares over all
    samples, channels and positions (float64).
    """
    modules = dict(model.named_modules())
    pairs = []
    for name, m in modules.items():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
            bn = modules.get(name.replace("conv", "bn"))
            if isinstance(bn, nn.BatchNorm2d):
                pairs.append(bn)
    if not pairs:
        raise LandscapeError("no 3x3 conv + BN pairs found; responses are defined for the ResNet/plain families")
    sums = {id(b): [0.0, 0.0, 0] for b in pairs}

    def hook(mod, inp, out):
        s = sums[id(mod)]
        o = out.double()
        s[0] += float(o.sum())
        s[1] += float((o * o).sum())
        s[2] += o.numel()

    handles = [b.register_forward_hook(hook) for b in pairs]
    try:
        model.eval()
        for i in range(0, len(x), batch_size):
            model(x[i:i + batch_size])
    finally:
        for h in handles:
            h.remove()
    out = []
    for b in pairs:
        s, ss, n = sums[id(b)]
        mean = s / n
        out.append(max(ss / n - mean * mean, 0.0) ** 0.5)
    return out


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m landscape.report", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("degradation", help="training/test error curves of plain vs residual runs (He et al. Fig. 6)")
    d.add_argument("runs", nargs="+", help="run folders (their final.pt) or checkpoints of landscape.train")
    r = sub.add_parser("responses", help="std of layer responses, plain vs residual (He et al. Fig. 7)")
    r.add_argument("runs", nargs="+", help="checkpoints or run folders")
    r.add_argument("--data", default="digits", help="data the responses are measured on (default digits)")
    r.add_argument("--split", default="test", choices=["train", "test"], help="default test, as He et al.")
    r.add_argument("--samples", type=int, default=None)
    for s in (d, r):
        s.add_argument("--out", default="plots", help="output folder (default plots/)")
        s.add_argument("--name", default=None, help="file stem (default: the data set's name)")
        s.add_argument("--formats", default="png,pdf", help="any of png,pdf,svg (default png,pdf)")
        s.add_argument("--trust-checkpoint", action="store_true")
    args = p.parse_args(argv)
    if args.name is not None:
        check_name(args.name)
    from landscape.render import parse_formats
    from landscape.render.analysis import degradation_figure, responses_figure

    formats = [f for f in parse_formats(args.formats) if f in ("png", "pdf", "svg")]
    if not formats:
        raise LandscapeError("--formats for reports: any of png,pdf,svg")
    ensure_writable_dir(args.out)
    if args.cmd == "degradation":
        runs = load_histories(args.runs, args.trust_checkpoint)
        files = degradation_figure(runs, os.path.join(args.out, args.name or "report"), formats)
        for label, h in runs.items():
            print(f"{label}: final training error {h['train_err'][-1]:.2f} %, test error {h['test_err'][-1]:.2f} %")
    else:
        responses = {}
        for run_ in args.runs:
            model, info = load_checkpoint(_checkpoint_of(run_), trust=args.trust_checkpoint)
            data = load_data(args.data, args.split, args.samples, in_channels=info["in_channels"])
            label = info["arch"]
            while label in responses:
                label += "'"
            responses[label] = layer_responses(model, data.x)
            print(f"{label}: {len(responses[label])} layers, response std mean {sum(responses[label]) / len(responses[label]):.3f}")
        files = responses_figure(responses, os.path.join(args.out, args.name or "report"), formats)
    print("figures: " + ", ".join(shown(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="landscape.report"))
