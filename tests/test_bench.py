"""The benchmark scripts run and report what they measured (tiny sizes, CPU); the figures are in BENCHMARKS.md."""

import json
import os
import subprocess
import sys

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
