"""Every GPU figure BENCHMARKS.md needs, in named stages that each fit one device call (< 10 minutes).

    python bench/suite.py --out $OUT check engine        # on the GPU machine, one call per few stages
    python bench/suite.py --out /tmp/s --smoke all       # tiny sizes: checks the suite itself on a CPU
    python bench/suite.py --table $OUT/bench.jsonl       # markdown rows for BENCHMARKS.md from the records

Each command's output goes to ``<out>/<stage>.log`` and each ``bench/grid.py`` run appends a JSON record to
``<out>/bench.jsonl`` (device, torch version, date and the exact command included), so a stage cut off by the
time limit still leaves the figures of the commands that finished.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

PY = sys.executable
GRID = [PY, "bench/grid.py"]
R56 = ["--arch", "resnet56", "--images", "10000", "--size", "32"]
P56 = ["--arch", "plain56", "--images", "10000", "--size", "32"]
R50 = ["--arch", "resnet50", "--images", "1000", "--size", "224"]


def stages() -> dict[str, list[list[str]]]:
    """Stage name -> commands, in the order they should run (the most needed figures first)."""
    return {
        # the GPU-only tests and the software versions
        "check": [["nvidia-smi"], [PY, "-m", "pytest", "-q", "tests", "-k", "gpu", "-p", "no:cacheprovider"]],
        # which engine is fastest, 11x11: the loop (the default for 10,000 images) vs vmap over K = 4 and 16
        # stacked points, in fp32 and bf16; then with 256 images (less than one batch, where the default stacks
        # points) vmap vs the loop; then BN folding and torch.compile (bf16, the precision the < 2 min target needs)
        "engine": [GRID + R56 + ["--grid", "11", "--precision", p, "--skip-ref", "--err-points", "8",
                                 "--points-per-step", k] for p in ("fp32", "bf16") for k in ("1", "4", "16")]
                  + [GRID + ["--arch", "resnet56", "--images", "256", "--size", "32", "--grid", "11", "--precision",
                             "bf16", "--skip-ref", "--err-points", "8"] + v for v in ([], ["--points-per-step", "1"])],
        # the loop engine's batch size (the GPU default is up to 4,096 32x32 images, in the engine stage): bf16 at
        # 1,024 / 2,048 / 8,192 and fp32 at 1,024, to check that default
        "batch": [GRID + R56 + ["--grid", "11", "--precision", p, "--skip-ref", "--err-points", "4", "--points-per-step",
                                "1", "--batch-size", b] for p, b in (("bf16", "1024"), ("bf16", "2048"),
                                                                    ("bf16", "8192"), ("fp32", "1024"))],
        # (tf32 too: it keeps a trained surface within 1 % where bf16 does not, but needs folding or fusion to
        # reach 220k images/s; see the roofline section of BENCHMARKS.md)
        "fold": [GRID + R56 + ["--grid", "11", "--precision", p, "--skip-ref", "--err-points", "8", "--fold-bn"]
                 + v for p, v in (("bf16", []), ("bf16", ["--points-per-step", "4"]), ("tf32", []))],
        "compile": [GRID + R56 + ["--grid", "11", "--precision", p, "--skip-ref", "--err-points", "8", "--compile"]
                    + v for p, v in (("bf16", []), ("bf16", ["--fold-bn"]), ("tf32", ["--fold-bn"]))],
        # the rows: ResNet-56 11x11 fp32 and 51x51 bf16 (bf16 error against fp32 at every point)
        "r56": [GRID + R56 + ["--grid", "11", "--precision", "fp32"]],
        "r56big": [GRID + R56 + ["--grid", "51", "--precision", "bf16", "--ref-points", "8", "--err-points", "64"]],
        "p56": [GRID + P56 + ["--grid", "11", "--precision", "fp32"],
                GRID + P56 + ["--grid", "51", "--precision", "bf16", "--ref-points", "8", "--err-points", "64"]],
        "r50": [GRID + R50 + ["--grid", "11", "--precision", "bf16", "--ref-points", "2"]],
        # precision error where it is largest: near a trained minimum (the shipped digits ResNet-56, every point)
        "error": [GRID + ["--ckpt", "checkpoints/resnet56_digits.pt", "--data", "digits", "--grid", "11",
                          "--precision", p, "--skip-ref", "--err-points", "0"] for p in ("bf16", "tf32")],
        # how time grows with grid points and with samples (tf32 error: every point of 11x11)
        "scale": [GRID + R56 + ["--grid", str(g), "--precision", "bf16", "--skip-ref", "--err-points", "4"]
                  for g in (5, 21)]
                 + [GRID + ["--arch", "resnet56", "--images", str(n), "--size", "32", "--grid", "11", "--precision",
                            "bf16", "--skip-ref", "--err-points", "4"] for n in (1000, 5000)]
                 + [GRID + R56 + ["--grid", "11", "--precision", "tf32", "--skip-ref", "--err-points", "0"]],
        # curvature (issue 14): one HVP's cost against a forward pass on the GPU, and K points' HVPs batched by
        # vmap (--eigen-points K) against K one-point HVPs, for the digits ResNet-56 (all 1,437 images, resident)
        "hessian": [[PY, "bench/hessian.py", "--ckpt", "checkpoints/resnet56_digits.pt", "--samples", "1437",
                     "--device", "cuda", "--batched", k] for k in ("4", "16")],
        # training throughput on 32x32 CIFAR-shaped data (50,000 images, He et al. batch 128, bf16 autocast)
        "train": [[PY, "-m", "landscape.train", "--arch", a, "--data", "synthetic:50000", "--epochs", "3",
                   "--out", f"/tmp/train_{a}", "--quiet"] for a in ("resnet56", "plain56")],
    }


def smoke(cmd: list[str]) -> list[str]:
    """The same command at toy sizes, for checking the suite on a CPU."""
    if cmd[:1] == ["nvidia-smi"]:
        return [PY, "-c", "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"]
    if "pytest" in cmd:
        return cmd + ["--collect-only"]
    swap = {"10000": "64", "1000": "32", "256": "32", "5000": "48", "224": "32", "50000": "128",
            "resnet56": "resnet20", "plain56": "plain20", "resnet50": "resnet20", "51": "3", "21": "3", "11": "2",
            "5": "2", "8": "1",
            "synthetic:50000": "synthetic:128", "3": "1"}  # "3": training epochs
    out = [swap.get(c, c) for c in cmd]
    return out + ["--device", "cpu"]


def run_stage(name: str, cmds: list[list[str]], out: str, is_smoke: bool, timeout: float) -> bool:
    """Run one stage's commands, logging to ``<out>/<name>.log``; returns whether every command succeeded."""
    ok = True
    with open(os.path.join(out, f"{name}.log"), "a") as log:
        for cmd in cmds:
            cmd = smoke(cmd) if is_smoke else cmd
            if "bench/grid.py" in cmd:
                cmd = cmd + ["--json", os.path.join(out, "bench.jsonl")]
            line = " ".join(shlex.quote(c) for c in cmd)
            print(f"$ {line}", file=log, flush=True)
            t0 = time.perf_counter()
            try:
                rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=timeout).returncode
            except subprocess.TimeoutExpired:
                rc = "timeout"
            print(f"[{name}] rc={rc} {time.perf_counter() - t0:.0f}s  {line}", flush=True)
            print(f"# rc={rc} after {time.perf_counter() - t0:.0f} s\n", file=log, flush=True)
            ok = ok and rc == 0
    return ok


def table(path: str) -> str:
    """Markdown rows, one per ``bench/grid.py`` record, in the column order of BENCHMARKS.md's GPU tables."""
    rows = ["| device | torch | date | model | images | grid | precision | engine | engine s | engine img/s | "
            "ceiling img/s | fraction of ceiling | reference img/s | speed-up | max rel. err vs fp32 (points) | "
            "command |", "|" + "---|" * 16]
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            engine = (f"K={r['K']}" + (" fold" if r.get("fold_bn") else "") + (" compile" if r.get("compile") else "")
                      + f" b={r['batch']}")
            ref = r["reference_points_per_s"] * r["images"]
            rows.append(
                f"| {r['device']} | {r['torch']} | {r['date']} | {r['arch']} | {r['images']:,} | "
                f"{r['grid']}x{r['grid']} | {r['precision']} | {engine} | {r['engine_s']:.1f} | "
                f"{r['engine_images_per_s']:,.0f} | {r['ceiling_images_per_s']:,.0f} | {r['ceiling_fraction']:.3f} | "
                + ("–" if ref != ref else f"{ref:,.0f}") + " | "
                + ("–" if r["speedup"] != r["speedup"] else f"{r['speedup']:.1f}×")
                + f" | {r['max_rel_err']:.1e} ({r['err_points']}) | `{r['command'].split(' --json')[0]}` |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    all_stages = stages()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stage", nargs="*", help=f"any of {', '.join(all_stages)}, or all")
    p.add_argument("--out", default="bench_out", help="folder for logs and bench.jsonl")
    p.add_argument("--smoke", action="store_true", help="toy sizes on the CPU (checks the suite, not the GPU)")
    p.add_argument("--timeout", type=float, default=540, help="seconds per command (default 540)")
    p.add_argument("--table", default=None, metavar="JSONL", help="print markdown rows from a bench.jsonl")
    a = p.parse_args(argv)
    if a.table:
        print(table(a.table))
        return 0
    names = list(all_stages) if a.stage == ["all"] else a.stage
    bad = [n for n in names if n not in all_stages]
    if bad or not names:
        p.error(f"unknown or missing stage {bad or ''}; valid: {', '.join(all_stages)}, all")
    os.makedirs(a.out, exist_ok=True)
    ok = all([run_stage(n, all_stages[n], a.out, a.smoke, a.timeout) for n in names])
    jsonl = os.path.join(a.out, "bench.jsonl")
    if os.path.exists(jsonl):
        print(table(jsonl))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
