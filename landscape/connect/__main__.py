"""CLI: ``python -m landscape.connect --ckpt A.pt --ckpt2 B.pt`` trains a curve of low loss between two solutions
and draws it against the straight line (:func:`landscape.connect.connect`)."""

from __future__ import annotations

import argparse
import sys

from landscape.cli import Parser, run
from landscape.connect import SHARED, ConnectSettings
from landscape.paths import shown
from landscape.settings import Config, add_arguments, from_namespace

EPILOG = """examples:
  python -m landscape.connect --ckpt runs/r20_s1/final.pt --ckpt2 runs/r20_s2/final.pt        # digits, train and test
  python -m landscape.connect --ckpt a.pt --ckpt2 b.pt --curve polychain --epochs 50 --data cifar10:~/data
Running the same command again resumes: the bend's training from its last epoch, the paths from their last point."""


def build_parser() -> Parser:
    p = Parser(prog="python -m landscape.connect", description="Train a curve of low loss between two solutions "
               "(Garipov et al. 2018) and evaluate it against the straight line.", epilog=EPILOG,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, help="the first solution, A (t = 0)")
    p.add_argument("--ckpt2", required=True, help="the second solution, B (t = 1)")
    add_arguments(p, Config, only=SHARED)
    add_arguments(p, ConnectSettings)
    p.add_argument("--quiet", dest="progress", action="store_false", help="no progress bar (= --no-progress)")
    p.set_defaults(split="train,test")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from landscape.connect import connect

    res = connect(args.ckpt, args.ckpt2, config=from_namespace(args, Config),
                  settings=from_namespace(args, ConnectSettings))
    print(f"curve: {res.path}")
    for key, value in sorted(res.barriers.items()):
        path, split = key.split("_", 1)
        print(f"  {path:5s} {split:5s} barrier {value:.4g}")
    if res.figures:
        print("figures: " + ", ".join(shown(f) for f in res.figures))
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="landscape.connect"))
