"""The README's Python examples run as written (a user copies them into a notebook)."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_blocks(section: str, until: str) -> list[str]:
    """The ```python blocks of the README between the heading ``section`` and the text ``until``."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    part = text[text.index(section):]
    part = part[:part.index(until)]
    return re.findall(r"```python\n(.*?)```", part, flags=re.S)


def test_the_own_networks_examples_run_as_written(tmp_path):
    pytest.importorskip("transformers")
    blocks = python_blocks("## Using it on your own networks", "### Large models")  # (its torchrun sketch aside)
    assert len(blocks) == 4  # a CNN, a HuggingFace model, a plain-PyTorch language model, a PINN
    code = "\n".join(blocks) + "\nprint('LOSS', res.settings['loss'])\n"
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", TRANSFORMERS_VERBOSITY="error")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = r.stdout.splitlines()
    assert out[1].startswith("model mean over non-ignored label tokens, labels shifted by one")
    assert out[-1] == "LOSS objective:__main__.laplace_residual"
    made = sorted(p.name for p in (tmp_path / "plots").glob("*.h5"))
    assert made == ["gpt2lmheadmodel.h5", "sequential.h5", "smallcnn.h5", "tinylm.h5"]
