"""A short soak (bench/soak.py has the long one): three surfaces computed at once in one folder while another
process draws one of them as it is written, one of the three killed at random moments (kill -9 and SIGTERM
mixed) until it completes; all equal an undisturbed run, no lock and no temporary file left. ~15 s on 2 idle
cores (real processes: each start-up imports torch)."""

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import soak  # noqa: E402


def test_soak(tmp_path):
    rep = soak.soak(str(tmp_path), os.path.join(ROOT, "checkpoints", "resnet20_digits.pt"), grid=5, surfaces=2,
                    kills=3, max_delay=2.5, seed=3, timeout=300)
    assert rep["problems"] == [], rep
    assert len(rep["kills"]) == 3 and {k["signal"] for k in rep["kills"]} == {"SIGKILL", "SIGTERM"}, rep["kills"]
    assert any(0 < r["done_before"] < 25 for r in rep["renders"])  # drawn while it was being written
