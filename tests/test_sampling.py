"""Every point's precision (standard errors, sample counts) and adaptive sampling (--tolerance), checked by hand."""

import copy
import math
import os

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.data import load_data
from landscape.directions import make_directions
from landscape.errors import LandscapeError
from landscape.evaluate import PlaneEvaluator
from procs import kill_torchrun_and_resume
from landscape.sampling import Z95, Sampling, chunk_ends, standard_error
from landscape.surface import read_direction, read_surface, summarize

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ONE_D = dict(one_d=True, x="-0.6:0.6:3", render=False, progress=False)


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.fc = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(4 * 4 * 4, 10)

    def forward(self, x):
        return self.fc(F.max_pool2d(F.relu(self.conv(x)), 2).flatten(1))


def batch_mean_ce(out, y):
    """A loss callable that gives only the batch mean (no per-sample values)."""
    return F.cross_entropy(out, y)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TinyCNN().eval()


@pytest.fixture(scope="module")
def digits400():
    return load_data("digits", "train", samples=400)  # the first 400 of the 1,437-image split


def _per_sample(model, path, x, y, k):
    """Per-sample cross-entropy (float64) and correctness at the file's k-th 1D point, on a fresh copy."""
    with h5py.File(path, "r") as f:
        dx, _ = read_direction(f, "xdirection")
        alpha = float(f["xcoordinates"][k])
    m = copy.deepcopy(model).eval()
    with torch.no_grad():
        for p, d in zip(m.parameters(), dx):
            p.add_(torch.from_numpy(d) * alpha)
        out = m(x)
    return F.cross_entropy(out, y, reduction="none").double().numpy(), (out.argmax(1) == y).double().numpy()


def test_sampling_arithmetic_by_hand():
    assert chunk_ends(1437, 256) == [256, 384, 576, 864, 1296, 1437]
    assert chunk_ends(100, 500) == [100] and chunk_ends(1000, None) == [1000]
    # values 1, 2, 3, 4: mean 2.5, sample variance 5/3
    assert standard_error(10.0, 30.0, 4, 4, None) == pytest.approx(math.sqrt(5 / 3 / 4))
    assert standard_error(10.0, 30.0, 4, 4, 8) == pytest.approx(math.sqrt(5 / 3 / 4 * (1 - 4 / 8)))
    assert standard_error(10.0, 30.0, 4, 4, 4) == 0.0  # the whole population: no sampling error
    assert math.isnan(standard_error(10.0, 30.0, 4, 1, 8))  # one batch mean: spread unknown
    sp = Sampling(1000, None, tolerance=0.1, cap=5.0)
    assert sp.population == 1000 and sp.min_samples == 500
    assert sp.stops(math.inf, math.inf, 500, 1) == (True, False)  # a diverged point stays diverged
    # values 1, 2, 3, 4 repeated: mean 2.5, half-width 1.96 * 1.118 / sqrt(n): met at n = 500 (0.098)
    assert sp.stops(1250.0, 3750.0, 500, 1) == (False, True)  # met once: not yet
    assert sp.stops(1250.0, 3750.0, 500, 1, met_before=True) == (True, True)  # met twice in a row: stop
    assert Sampling(1000, None, tolerance=0.05, cap=2.0).stops(1250.0, 3750.0, 500, 1) == (True, False)  # > cap
    with pytest.raises(LandscapeError, match="tolerance must be a positive number"):
        Sampling(1000, tolerance=0.0)
    # --rtol: the tolerance grows with the mean (2.5): 0.02 * 2.5 = 0.05 < 0.098, 0.05 + 0.02 * 2.5 = 0.1 >= 0.098
    rel = Sampling(1000, None, rtol=0.02)
    assert rel.adaptive and rel.ends() == [500, 750, 1000] and rel.permutation() is not None
    assert rel.stops(1250.0, 3750.0, 500, 1, met_before=True) == (False, False)
    assert Sampling(1000, None, tolerance=0.05, rtol=0.02).stops(1250.0, 3750.0, 500, 1, True) == (True, True)
    assert Sampling(1000, None, rtol=0.04).stops(-1250.0, 3750.0, 500, 1, True) == (True, True)  # |mean|
    assert not Sampling(1000).adaptive
    with pytest.raises(LandscapeError, match="rtol must be a positive number"):
        Sampling(1000, rtol=-0.1)


def test_stored_errors_are_the_sample_std_over_sqrt_n_with_the_population_correction(tmp_path, tiny, digits400):
    x, y = digits400.x, digits400.y  # 400 tensors: with samples=100 the first 100 of a population of 400
    res = landscape.compute(tiny, data=(x, y), samples=100, out=str(tmp_path), **ONE_D)
    s = read_surface(res.path)
    assert s.attrs["population"] == 400 and s.attrs["n_samples"] == 100
    for k in range(3):
        loss, correct = _per_sample(tiny, res.path, x[:100], y[:100], k)
        fpc = math.sqrt(1 - 100 / 400)
        assert s.values["train_loss"][k] == pytest.approx(loss.mean(), rel=1e-6)
        assert s.values["train_loss_se"][k] == pytest.approx(loss.std(ddof=1) / math.sqrt(100) * fpc, rel=1e-5)
        assert s.values["train_acc_se"][k] == pytest.approx(100 * correct.std(ddof=1) / 10 * fpc, rel=1e-9)
        assert s.values["train_n"][k] == 100
    assert s.values["train_loss_se"][0] > 0.01  # a real spread, not a vacuous check
    summ = summarize(s)
    assert summ["max_loss_se"] == pytest.approx(np.max(s.values["train_loss_se"]))
    assert summ["max_acc_se"] == pytest.approx(np.max(s.values["train_acc_se"]))


def test_a_point_on_all_the_data_has_no_sampling_error(tmp_path, tiny, digits400):
    res = landscape.compute(tiny, data=(digits400.x, digits400.y), out=str(tmp_path), **ONE_D)
    s = read_surface(res.path)
    assert s.attrs["population"] == 400
    np.testing.assert_array_equal(s.values["train_loss_se"], 0.0)
    np.testing.assert_array_equal(s.values["train_acc_se"], 0.0)
    np.testing.assert_array_equal(s.values["train_n"], 400.0)


def test_a_mean_only_loss_takes_its_error_from_the_batch_means(tmp_path, tiny, digits400):
    x, y = digits400.x, digits400.y
    res = landscape.compute(tiny, data=(x, y), samples=100, batch_size=25, loss=batch_mean_ce, out=str(tmp_path),
                            **ONE_D)
    s = read_surface(res.path)
    for k in range(3):
        loss, _ = _per_sample(tiny, res.path, x[:100], y[:100], k)
        means = loss.reshape(4, 25).mean(1)  # four batches of 25
        var = np.sum(25 * (means - loss.mean()) ** 2) / 3
        assert s.values["train_loss_se"][k] == pytest.approx(math.sqrt(var / 100 * (1 - 100 / 400)), rel=1e-5)


def _expected_adaptive(model, data, xdir, ydir, coords, tol, min_samples, cap, seed, rtol=0.0):
    """The stopping rule applied by hand to per-sample losses of the permuted data: (n, mean) per point."""
    perm = np.random.RandomState(seed).permutation(len(data))
    out = []
    for a, b in coords:
        m = copy.deepcopy(model).eval()
        with torch.no_grad():
            for p, dx, dy in zip(m.parameters(), xdir, ydir):
                p.add_(a * dx + b * dy)
            loss = F.cross_entropy(m(data.x), data.y, reduction="none").double().numpy()[perm]
        before = False
        for n in chunk_ends(len(data), min_samples):
            head = loss[:n]
            half = Z95 * head.std(ddof=1) / math.sqrt(n) * math.sqrt(1 - n / 1437)  # population: the 1,437
            met = half <= tol + rtol * abs(head.mean())
            if n == len(data) or (met and before) or head.mean() - half > cap:
                break  # the tolerance met at two checks in a row, or the interval above the cap
            before = met
        out.append((n, head.mean()))
    return out


@pytest.mark.parametrize("points_per_step", [1, 3])
def test_tolerance_chunks_and_stopping_rule_match_the_rule_by_hand(model, digits400, points_per_step):
    xdir, ydir = make_directions(model, seed=4)
    coords = [(0.0, 0.0), (0.1, 0.1), (0.2, -0.1), (0.3, 0.25), (0.45, 0.4), (0.8, -0.9)]
    ev = PlaneEvaluator(model, digits400, xdir, ydir, batch_size=50, points_per_step=points_per_step,
                        tolerance=0.3, min_samples=64, sample_seed=9)
    ev.sampling.cap = 20.0
    losses, _, stats = ev.evaluate_points(coords)
    want = _expected_adaptive(model, digits400, xdir, ydir, coords, 0.3, 64, 20.0, 9)
    assert stats["n"] == [float(n) for n, _ in want]
    # by the tolerance (met after 96 and 144, 144 and 216, 216 and 324 samples); never (loss ~8: all 400); by the
    # cap after the first 64
    assert stats["n"] == [144.0, 216.0, 324.0, 400.0, 64.0, 64.0]
    np.testing.assert_allclose(losses, [m for _, m in want], rtol=2e-5)
    assert ev.evaluate_points(coords)[2]["n"] == stats["n"]  # and again: deterministic


def test_rtol_stops_each_point_at_its_own_relative_precision(model, digits400):
    """--rtol alone: a point stops once its 95 % half-width is within rtol of its own mean loss (the rule by hand),
    so a point with a larger loss may stop sooner than under an absolute tolerance."""
    xdir, ydir = make_directions(model, seed=4)
    coords = [(0.0, 0.0), (0.1, 0.1), (0.2, -0.1), (0.3, 0.25), (0.45, 0.4), (0.8, -0.9)]
    ev = PlaneEvaluator(model, digits400, xdir, ydir, batch_size=50, rtol=0.1, min_samples=64, sample_seed=9)
    ev.sampling.cap = 20.0
    losses, _, stats = ev.evaluate_points(coords)
    want = _expected_adaptive(model, digits400, xdir, ydir, coords, 0.0, 64, 20.0, 9, rtol=0.1)
    assert stats["n"] == [float(n) for n, _ in want]
    # the fourth point (loss 8.0) stops after 216 samples; with the absolute --tolerance 0.3 it takes all 400 (above)
    assert stats["n"] == [144.0, 144.0, 216.0, 216.0, 64.0, 64.0]
    np.testing.assert_allclose(losses, [m for _, m in want], rtol=2e-5)
    half = Z95 * np.array(stats["loss_se"][:4])
    assert np.all(half <= 0.1 * np.array(losses[:4])) and half[3] > 0.3  # met rtol, and not the absolute 0.3


def test_a_point_is_read_back_once_per_chunk_never_per_batch(model, digits400, monkeypatch):
    """On a GPU every read-back is a host synchronisation: with --tolerance one per chunk of a point that may stop
    there, plus the block's one; never one per batch."""
    xdir, ydir = make_directions(model, seed=4)
    ev = PlaneEvaluator(model, digits400, xdir, ydir, batch_size=20, tolerance=1e-9, min_samples=64)
    reads = []
    for name in ("item", "tolist", "__float__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda t, *a, _n=name, _r=real: reads.append(_n) or _r(t, *a))
    stats = ev.evaluate_points([(0.1, 0.1), (0.2, 0.0)])[2]
    monkeypatch.undo()
    assert stats["n"] == [400.0, 400.0]  # chunks end at 64, 96, 144, 216, 324, 400: 20 batches of 20 each
    assert reads == ["tolist"] * (2 * 5 + 1)  # 5 checks per point (none after the last chunk) + the block's


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("points_per_step", [1, 3])
def test_gpu_stops_where_the_cpu_does(model, digits400, points_per_step):
    xdir, ydir = make_directions(model, seed=4)
    coords = [(0.0, 0.0), (0.1, 0.1), (0.2, -0.1), (0.3, 0.25), (0.45, 0.4), (0.8, -0.9)]
    got = []
    for data in (digits400, digits400.to("cuda")):
        ev = PlaneEvaluator(model, data, xdir, ydir, batch_size=50, points_per_step=points_per_step,
                            tolerance=0.3, min_samples=64, sample_seed=9)
        ev.sampling.cap = 20.0
        got.append(ev.evaluate_points(coords))
    assert got[0][2]["n"] == got[1][2]["n"]
    np.testing.assert_allclose(got[1][0], got[0][0], rtol=1e-4)


def test_a_point_off_the_scale_stops_after_the_minimum_count(model, digits400):
    xdir, ydir = make_directions(model, seed=4)
    ev = PlaneEvaluator(model, digits400, xdir, ydir, batch_size=50, tolerance=1e-9, min_samples=80)
    ev.sampling.cap = 5.0  # an absurdly tight tolerance: only the cap can stop a point early
    losses, _, stats = ev.evaluate_points([(0.0, 0.0), (1.0, 1.0), (-1.0, 1.0)])
    assert stats["n"] == [400.0, 80.0, 80.0]
    assert losses[0] < 5.0 and losses[1] - Z95 * stats["loss_se"][1] > 5.0


def test_resuming_with_another_tolerance_is_an_error(tmp_path, tiny, digits400):
    data = (digits400.x, digits400.y)
    res = landscape.compute(tiny, data=data, tolerance=0.2, min_samples=100, out=str(tmp_path), **ONE_D)
    s = read_surface(res.path)
    assert (s.attrs["tolerance"], s.attrs["min_samples"], s.attrs["permutation_seed"]) == (0.2, 100, 123)
    with torch.no_grad():
        centre = float(F.cross_entropy(tiny(digits400.x), digits400.y))  # theta* on all the data
    assert s.attrs["loss_cap"] == pytest.approx(max(10 * centre, centre + 10), rel=1e-6)
    with pytest.raises(LandscapeError, match="tolerance: file has 0.2, this run 0.1"):
        landscape.compute(tiny, data=data, tolerance=0.1, min_samples=100, out=str(tmp_path), **ONE_D)
    with pytest.raises(LandscapeError, match="min_samples: file has 100, this run 500"):
        landscape.compute(tiny, data=data, tolerance=0.2, out=str(tmp_path), **ONE_D)
    with pytest.raises(LandscapeError, match="tolerance: file has 0.2, this run ''"):
        landscape.compute(tiny, data=data, out=str(tmp_path), **ONE_D)
    with pytest.raises(LandscapeError, match="rtol: file has '', this run 0.05"):
        landscape.compute(tiny, data=data, tolerance=0.2, rtol=0.05, min_samples=100, out=str(tmp_path), **ONE_D)
    rel = landscape.compute(tiny, data=data, rtol=0.05, min_samples=100, out=str(tmp_path), name="rel", **ONE_D)
    r = read_surface(rel.path)
    assert (r.attrs["tolerance"], r.attrs["rtol"], r.attrs["min_samples"]) == ("", 0.05, 100)
    assert r.attrs["loss_cap"] == s.attrs["loss_cap"]


def test_tolerance_counts_are_equal_across_a_killed_torchrun_job_and_one_process(tmp_path, ckpt):
    """kill -9 a two-rank torchrun job computing with --tolerance, resume it: every point's value, error and
    sample count equal a single-process run's."""
    args = ["-m", "landscape.plot", "--ckpt", ckpt, "--x", "-1:1:8", "--y", "-1:1:5", "--samples", "400",
            "--batch-size", "100", "--tolerance", "0.05", "--min-samples", "100", "--quiet", "--no-render",
            "--device", "cpu"]
    h5, one = kill_torchrun_and_resume(tmp_path, args, points=6, total=40)
    with h5py.File(one) as a, h5py.File(h5) as b:
        for key in ("train_loss", "train_loss_se", "train_n", "train_acc"):
            np.testing.assert_array_equal(a[key][()], b[key][()])
        n = b["train_n"][()]
        assert set(np.unique(n)) <= {100, 150, 225, 338, 400} and len(np.unique(n)) >= 2
        assert b.attrs["loss_cap"] == a.attrs["loss_cap"]


def test_every_split_records_its_own_precision(tmp_path, ckpt):
    """--split train,test: each split's errors are those of its own data (and its own population: 1,437 and 360
    digits), the test split's equal to a surface of the test split alone."""
    res = landscape.compute(ckpt, data="digits", split="train,test", samples=100, out=str(tmp_path), **ONE_D)
    s = read_surface(res.path)
    for split in ("train", "test"):
        np.testing.assert_array_equal(s.values[f"{split}_n"], 100.0)
        assert np.all(s.values[f"{split}_loss_se"] > 0) and np.all(np.isfinite(s.values[f"{split}_acc_se"]))
    model, _ = landscape.checkpoints.load_checkpoint(ckpt)
    res1 = landscape.compute(model, data=load_data("digits", "test", samples=100), out=str(tmp_path), name="t",
                             **ONE_D)
    np.testing.assert_allclose(read_surface(res1.path).values["train_loss_se"], s.values["test_loss_se"],
                               rtol=1e-5)
