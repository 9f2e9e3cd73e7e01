"""Filesystem helpers shared by the CLIs and the library (torch-free, so rendering may use them too)."""

from __future__ import annotations

import glob
import os
import re

from landscape.errors import LandscapeError


def ensure_writable_dir(out: str) -> None:
    """Create ``out`` if needed and check we can write there, before any long computation starts."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise LandscapeError(f"cannot create output folder {out!r} ({e.strerror}); pass a writable --out")
    if not os.access(out, os.W_OK | os.X_OK):
        raise LandscapeError(f"output folder {out!r} is not writable; pass a writable --out")


def list_snapshots(run_dir: str) -> list[tuple[int, str]]:
    """``(epoch, path)`` of a training run's ``epoch_NNN.pt`` snapshots, in epoch order."""
    found = []
    for p in glob.glob(os.path.join(glob.escape(run_dir), "epoch_*.pt")):
        m = re.search(r"epoch_(\d+)\.pt$", p)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)
