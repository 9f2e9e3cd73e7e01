"""--refine: a coarse level, then only the cells the coarser level cannot predict; on known functions the counts
are what the rule says and the predictions within the tolerance; on a network the evaluated points equal a full
run's, crash and resume give the same values, torchrun equals one process."""

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn

import landscape
from landscape.refine import Refinement, Rule, coarsest_stride, nodes
from landscape.surface import read_surface
from byhand import crash_and_resume

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(field: np.ndarray, rule: Rule, **kw) -> tuple[Refinement, np.ndarray]:
    """The refinement of a known surface: every point it asks for is 'evaluated' by reading ``field``."""
    shape = field.shape
    ny, nx = shape if field.ndim == 2 else (1, shape[0])
    centre = (ny // 2) * nx + nx // 2 if field.ndim == 2 else nx // 2
    ref = Refinement(shape, rule, centre, **kw)
    ev = np.zeros(field.size, dtype=bool)
    asked = []

    def read():
        return {"train_loss": np.where(ev, field.reshape(-1), np.nan)}, ev.copy()

    for _, pts in ref.levels(read):
        assert not ev[pts].any()  # never asked twice
        ev[pts] = True
        asked.append(pts)
    return ref, ev.reshape(shape)


def test_the_levels_and_nodes():
    assert coarsest_stride(41) == 4 and coarsest_stride(51) == 4 and coarsest_stride(101) == 8
    assert coarsest_stride(15) == 1  # too small to refine: every point evaluated
    assert list(nodes(11, 4)) == [0, 4, 8, 10]  # the last index always a node


def test_a_log_quadratic_bowl_costs_the_coarse_grid_and_one_check_per_cell():
    """exp(quadratic): the cubic predictor in log space is exact, so every cell passes its first check (its
    centre) and the rest is predicted: evaluated = the 11 x 11 coarse grid + the 10 x 10 cell centres, exactly."""
    x = np.linspace(-1, 1, 41)
    X, Y = np.meshgrid(x, x)
    field = np.exp(1.5 * X ** 2 + 0.8 * Y ** 2 - 0.3 * X * Y - 2.0)  # from 0.14 to 2.7, below any cap
    ref, ev = run(field, Rule(0.0, 0.01, cap=10.0))
    assert ev.sum() == 11 * 11 + 10 * 10
    np.testing.assert_allclose(ref.values["train_loss"], field, rtol=1e-9)


def test_a_sharp_feature_is_refined_and_the_smooth_rest_predicted_within_the_tolerance():
    x = np.linspace(-1, 1, 41)
    X, Y = np.meshgrid(x, x)
    bump = 4.0 * np.exp(-((X - 0.35) ** 2 + (Y + 0.3) ** 2) / 0.004)  # a pit 0.06 wide: between coarse nodes
    field = np.exp(X ** 2 + Y ** 2 - 1.0) + bump
    rule = Rule(0.02, 0.02, cap=50.0)
    ref, ev = run(field, rule)
    near = (X - 0.35) ** 2 + (Y + 0.3) ** 2 < 0.01
    assert ev[near].mean() > 0.5 and ev[~near].mean() < 0.2  # the points go where the surface is sharp
    err = np.abs(ref.values["train_loss"] - field)
    assert np.mean(err <= rule.tolerance + rule.rtol * np.abs(field)) >= 0.99


def test_off_scale_cells_stay_coarse_and_every_off_scale_point_stays_off_scale():
    x = np.linspace(-1, 1, 41)
    X, Y = np.meshgrid(x, x)
    field = 0.01 * np.exp(12 * (X ** 2 + Y ** 2))  # a basin with walls to 1.6e6, cap 10
    rule = Rule(0.05, 0.05, cap=10.0)
    ref, ev = run(field, rule)
    got = ref.values["train_loss"]
    assert np.array_equal(got > rule.cap, field > rule.cap)
    coarse = np.zeros_like(ev)
    coarse[np.ix_(nodes(41, 4), nodes(41, 4))] = True
    assert not (ev & (field > 1000) & ~coarse).any()  # far up the walls: only the coarse grid was evaluated
    inside = field <= rule.cap
    assert np.mean(np.abs(got - field)[inside] <= 0.05 + 0.05 * field[inside]) >= 0.95


def test_a_1d_curve():
    x = np.linspace(-1, 1, 101)
    field = np.exp(3 * x ** 2) * (1 + 0.3 * np.sin(9 * x))
    ref, ev = run(field, Rule(0.0, 0.01, cap=1e9))
    assert ev.sum() < 60
    assert np.mean(np.abs(ref.values["train_loss"] - field) <= 0.01 * field) >= 0.99


@pytest.fixture(scope="module")
def data(digits_small):
    return digits_small.x[:60].flatten(1).clone(), digits_small.y[:60].clone()


@pytest.fixture
def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 32), nn.Tanh(), nn.Linear(32, 10)).eval()


GRID = dict(x="-2:2:21", y="-2:2:21", render=False, progress=False)


def test_a_refined_surface_equals_the_full_one_where_evaluated_and_is_close_elsewhere(tmp_path, mlp, data):
    full = read_surface(landscape.compute(mlp, data=data, out=str(tmp_path), name="full", **GRID).path)
    res = landscape.compute(mlp, data=data, refine=True, out=str(tmp_path), name="r", **GRID)
    s = read_surface(res.path)
    ev = s.evaluated["train"]
    assert s.done["train"].all() and s.attrs["refine"] in (True, 1) and res.summary["evaluated"] == ev.sum()
    assert res.computed == ev.sum() < 0.6 * ev.size
    np.testing.assert_array_equal(s.values["train_loss"][ev], full.values["train_loss"][ev])
    np.testing.assert_array_equal(s.values["train_acc"][ev], full.values["train_acc"][ev])
    rel = np.abs(s.values["train_loss"] - full.values["train_loss"]) / full.values["train_loss"]
    assert np.mean(rel <= 0.02) >= 0.95  # the default rule: within 2 %
    assert np.all(s.values["train_n"][~ev] == 0) and np.all(s.values["train_n"][ev] == 60)


def test_a_crash_mid_refinement_resumes_to_the_same_values(tmp_path, mlp, data):
    whole = landscape.compute(mlp, data=data, refine=True, out=str(tmp_path), name="whole", **GRID)
    done, again = crash_and_resume(mlp, 140, data=data, refine=True, out=str(tmp_path), name="cut", **GRID)
    assert 0 < done < whole.computed  # stopped mid-way (no predictions written yet)
    a, b = read_surface(whole.path), read_surface(again.path)
    np.testing.assert_array_equal(a.values["train_loss"], b.values["train_loss"])
    np.testing.assert_array_equal(a.evaluated["train"], b.evaluated["train"])
    assert again.computed == whole.computed - done


def test_refine_with_tolerance_and_train_test(tmp_path, mlp, data):
    """--refine --tolerance: fewer points and fewer samples per point; train,test refined on the union."""
    x, y = data
    res = landscape.compute(mlp, data={"train": (x[:40], y[:40]), "test": (x[40:], y[40:])}, refine=True,
                            tolerance=0.2, min_samples=10, out=str(tmp_path), name="tt", **GRID)
    s = read_surface(res.path)
    ev = s.evaluated["train"]
    assert np.array_equal(ev, s.evaluated["test"]) and ev.sum() < ev.size
    assert np.nanmax(s.values["train_n"]) == 40 and np.nanmin(s.values["train_n"][ev]) < 40
    assert np.isfinite(s.values["test_loss"]).all()


def test_the_page_says_predicted(tmp_path, mlp, data):
    res = landscape.compute(mlp, data=data, refine=True, out=str(tmp_path), name="p", x="-2:2:21", y="-2:2:21",
                            progress=False, formats="html")
    page = open(res.path[:-3] + ".html").read()
    assert "predicted (--refine), not evaluated" in page


def test_torchrun_shares_each_level_and_equals_one_process(tmp_path, mlp):
    from landscape.checkpoints import save_checkpoint
    from conftest import make_model

    ckpt = str(tmp_path / "m.pt")
    save_checkpoint(ckpt, make_model("resnet20"), "resnet20", dataset="digits", normalization={"mean": [0.3054],
                                                                                            "std": [0.3759]})
    args = ["-m", "landscape.plot", "--ckpt", ckpt, "--x", "-1:1:17", "--y", "-1:1:17", "--samples", "40",
            "--refine", "--quiet", "--no-render", "--device", "cpu"]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "one")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    assert "refined: " in one.stdout and "points evaluated" in one.stdout
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          *args, "--out", str(tmp_path / "two")], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    with h5py.File(tmp_path / "one" / "m.h5") as a, h5py.File(tmp_path / "two" / "m.h5") as b:
        np.testing.assert_array_equal(a["train_loss"][()], b["train_loss"][()])
        np.testing.assert_array_equal(a["train_evaluated"][()], b["train_evaluated"][()])
        assert b["train_done"][()].all() and not b["train_evaluated"][()].all()
