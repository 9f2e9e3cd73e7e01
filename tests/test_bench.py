"""The benchmark scripts run and report what they measured (tiny sizes, CPU); the figures are in BENCHMARKS.md."""

import json
import os
import subprocess
import sys

import numpy as np
import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import suite  # noqa: E402


def test_grid_benchmark_prints_result_and_a_json_record(tmp_path):
    rec = tmp_path / "b.jsonl"
    out = subprocess.run([sys.executable, "bench/grid.py", "--arch", "resnet20", "--images", "32", "--size", "32",
                          "--grid", "2", "--ref-points", "1", "--err-points", "0", "--fold-bn", "--device", "cpu",
                          "--json", str(rec)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT speedup=") and "ceiling_fraction=" in last and "max_rel_err=" in last
    r = json.loads(rec.read_text())
    assert r["points"] == 4 and r["err_points"] == 4 and r["fold_bn"] is True and r["device"] == "cpu"
    assert r["max_rel_err"] < 1e-5  # folded fp32 vs unfolded fp32: rounding only
    assert r["batch"] == 128 and r["ceiling_batch"] == 32  # the ceiling never counts images the data lacks
    assert "MACs/image 40.8 M" in out.stdout  # resnet20 at 32x32
    rows = suite.table(str(rec)).splitlines()
    assert len(rows) == 3 and "| resnet20 | 32 | 2x2 | fp32 | K=1 fold b=128 |" in rows[2]


def test_suite_smoke_runs_a_stage_and_shrinks_every_command(tmp_path):
    for cmds in suite.stages().values():
        for cmd in cmds:
            small = suite.smoke(cmd)
            assert not {"resnet56", "plain56", "resnet50", "10000", "51", "synthetic:50000"} & set(small)
    assert suite.main(["--out", str(tmp_path), "--smoke", "r50"]) == 0
    assert (tmp_path / "r50.log").read_text().count("rc=0") == 1
    assert len((tmp_path / "bench.jsonl").read_text().splitlines()) == 1


def test_roofline_counts_resnet56():
    out = subprocess.run([sys.executable, "bench/roofline.py", "--arch", "resnet56"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "125.7 M multiply-adds/image" in out.stdout and "| H100-SXM | bf16 |" in out.stdout


def test_mantissa_rounding_is_torchs_bf16_and_rounds_ties_to_even():
    import precision

    x = torch.randn(100_000, generator=torch.Generator().manual_seed(0)) * 10.0 ** torch.randint(-6, 6, (100_000,))
    assert torch.equal(precision.round_mantissa(x, 7), x.to(torch.bfloat16).float())
    one = torch.tensor([1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 3 * 2 ** -12), 2 - 2 ** -12, 1 + 2 ** -10])
    # ties: 1 + half an ulp goes down to the even 1.0, 1 + 1.5 ulp up to the even 1 + 2 ulp; a carry into the
    # exponent (2 - 2^-12 -> 2.0); exact values stay
    assert precision.round_mantissa(one, 10).tolist() == [1.0, 1 + 2 ** -9, -(1 + 2 ** -10), 2.0, 1 + 2 ** -10]
    assert torch.equal(precision.round_mantissa(x, 23), x)
    cl = torch.randn(2, 3, 4, 4).to(memory_format=torch.channels_last)
    assert precision.round_mantissa(cl, 10).is_contiguous(memory_format=torch.channels_last)


def test_operand_rounding_rounds_conv_operands_only_while_active():
    import precision
    from landscape.models import create_model

    torch.manual_seed(0)
    m = create_model("resnet20", in_channels=1).eval()
    x = torch.randn(4, 1, 8, 8)
    w0 = {k: v.clone() for k, v in m.state_dict().items()}
    with torch.no_grad():
        plain = m(x)
        with precision.operand_rounding(m, 23):
            assert torch.equal(m(x), plain)  # 23 bits: no rounding at all
        with precision.operand_rounding(m, 7):
            rounded = m(x)
            assert all(torch.equal(v, w0[k]) for k, v in m.state_dict().items())  # weights untouched in between
        assert torch.equal(m(x), plain)  # hooks gone
    assert not torch.equal(rounded, plain) and torch.allclose(rounded, plain, rtol=0.1, atol=0.05)


def test_precision_benchmark_reports_every_mode(tmp_path):
    out = subprocess.run([sys.executable, "bench/precision.py", "--ckpt", "checkpoints/resnet20_digits.pt",
                          "--samples", "64", "--grid", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1].split()
    assert last[0] == "RESULT" and [kv.split("=")[0] for kv in last[1:]] == ["tf32_emulated", "bf16_emulated",
                                                                         "bf16_autocast"]
    err = {k: float(v) for k, v in (kv.split("=") for kv in last[1:])}
    assert 0 < err["tf32_emulated"] < err["bf16_emulated"] < 0.1  # fewer mantissa bits, larger error


def test_eigen_map_summary_counts_the_convex_points(tmp_path):
    import h5py

    import eigen_maps

    p = tmp_path / "m.h5"
    with h5py.File(p, "w") as f:
        f["xcoordinates"] = np.array([-1.0, 0.0, 1.0])
        f["ycoordinates"] = np.array([-1.0, 0.0])
        f["max_eig"] = np.array([[10.0, 8.0, 4.0], [10.0, 9.0, 2.0]])  # (len(y), len(x)), as the loss
        f["min_eig"] = np.array([[-0.2, -0.1, -1.0], [-1.5, 0.5, -1.0]])  # ratios .02 .0125 .25 / .15 .0556 .5
    s = eigen_maps.summary(str(p))
    assert (s["points"], s["under_0.05"], s["under_0.1"], s["under_0.2"]) == (6, 2, 3, 4)
    assert s["centre_max_eig"] == 9.0 and s["centre_min_eig"] == 0.5  # x = 0, y = 0: row 1, column 1
    assert abs(s["mean"] - (0.02 + 0.15 + 0.0125 + 0.5 / 9 + 0.25 + 0.5) / 6) < 1e-12
