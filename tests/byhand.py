"""Values computed by hand from a surface file's own directions, for tests to compare the engine against.

Not a test module: imported by test_objectives and test_hf.
"""

from __future__ import annotations

import contextlib
import copy

import h5py
import torch

POINTS = ((0, 0), (1, 1), (2, 1))  # (i, j) of a 3x3 grid: a corner, theta*, an edge


def moved(model: torch.nn.Module, path: str, i: int, j: int) -> torch.nn.Module:
    """A copy of ``model`` in eval mode at grid point (i, j) of the file (j alone in 1D): theta* + x_j dx + y_i dy,
    by hand, in ``parameters()`` order."""
    from landscape.directions import load_directions

    dx, dy = load_directions(path, model)  # the tensors, or rebuilt from a lean file's seeds
    dy = dy if dy is not None else [torch.zeros_like(d) for d in dx]
    with h5py.File(path, "r") as f:
        a = float(f["xcoordinates"][j])
        b = float(f["ycoordinates"][i]) if "ycoordinates" in f else 0.0
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p, u, v in zip(m.parameters(), dx, dy):
            p.add_(u.to(p.dtype) * a + v.to(p.dtype) * b)
    return m


@contextlib.contextmanager
def raising_after(model: torch.nn.Module, after: int, error: BaseException):
    """``model``'s forward raises ``error`` once it has run ``after`` times (a crash or a Ctrl-C mid-grid)."""
    calls = {"n": 0}

    def hook(*_):
        calls["n"] += 1
        if calls["n"] > after:
            raise error

    handle = model.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def crash_and_resume(model: torch.nn.Module, after: int, **compute_kwargs):
    """Run ``landscape.compute`` on a copy of ``model`` whose forward raises after ``after`` calls (a crash
    mid-grid), then the same call again; returns ``(points done before the crash, the resumed result)``."""
    import landscape
    from landscape.surface import read_surface

    net = copy.deepcopy(model)
    with raising_after(net, after, RuntimeError("simulated crash")):
        try:
            landscape.compute(net, **compute_kwargs)
        except RuntimeError as e:
            assert "simulated crash" in str(e)
        else:
            raise AssertionError("the run did not crash: raise 'after' less")
    done = int(read_surface(compute_kwargs["out"] + "/" + compute_kwargs["name"] + ".h5").done["train"].sum())
    return done, landscape.compute(net, **compute_kwargs)
