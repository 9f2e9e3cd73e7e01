import copy

import numpy as np

import pytest
import torch
import torch.nn.functional as F

from landscape.directions import make_directions
from landscape.errors import LandscapeError
from landscape.evaluate import (PlaneEvaluator, default_batch_size, loss_and_accuracy, plan_gpu_step,
                                recompute_bn_statistics, resolve_device)


def _reference_point(model, data, xdir, ydir, a, b):
    """Independent recomputation: a fresh copy with theta* + a*dx + b*dy loaded, eval(), mean cross-entropy."""
    fresh = copy.deepcopy(model)
    with torch.no_grad():
        for p, dx, dy in zip(fresh.parameters(), xdir, ydir):
            p.copy_(p + a * dx + b * dy)
    fresh.eval()
    with torch.no_grad():
        logits = fresh(data.x)
    return F.cross_entropy(logits, data.y).item(), 100.0 * int((logits.argmax(1) == data.y).sum()) / len(data)


def test_loss_and_accuracy_match_a_direct_computation(model, digits_small):
    loss, acc = loss_and_accuracy(model, digits_small, batch_size=64)
    with torch.no_grad():
        logits = model(digits_small.x)
    assert loss == pytest.approx(F.cross_entropy(logits, digits_small.y).item(), rel=1e-6)
    assert acc == pytest.approx(100.0 * int((logits.argmax(1) == digits_small.y).sum()) / len(digits_small), abs=1e-9)


def test_points_match_independent_recomputation(model, digits_small):
    xdir, ydir = make_directions(model, seed=1)
    ev = PlaneEvaluator(model, digits_small, xdir, ydir, batch_size=64)
    coords = [(0.3, -0.2), (-0.9, 0.7), (0.05, 0.0), (1.0, 1.0)]
    losses, accs = ev.evaluate(coords)
    for (a, b), loss, acc in zip(coords, losses, accs):
        ref_loss, ref_acc = _reference_point(model, digits_small, xdir, ydir, a, b)
        assert loss == pytest.approx(ref_loss, rel=1e-5)
        assert acc == pytest.approx(ref_acc, abs=1e-6)


def test_centre_is_the_unperturbed_model_and_model_is_restored(model, digits_small):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    base = loss_and_accuracy(model.to(memory_format=torch.channels_last), digits_small)  # the engine's layout
    xdir, ydir = make_directions(model)
    ev = PlaneEvaluator(model, digits_small, xdir, ydir)
    losses, accs = ev.evaluate([(0.5, 0.5), (0.0, 0.0)])
    assert (losses[1], accs[1]) == base  # exactly: theta* + 0 is theta*
    assert losses[0] != base[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bn_recompute_uses_the_data_statistics(model, digits_small):
    recompute_bn_statistics(model, digits_small, batch_size=len(digits_small))
    with torch.no_grad():
        h = model.conv1(digits_small.x)
    torch.testing.assert_close(model.bn1.running_mean, h.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(model.bn1.running_var, h.var((0, 2, 3), unbiased=True), rtol=1e-4, atol=1e-5)
    assert not model.training
    recompute_bn_statistics(model, digits_small, batch_size=50)  # 4 equal batches: same mean, batch-averaged var
    torch.testing.assert_close(model.bn1.running_mean, h.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)


def test_bn_recompute_mode_differs_from_eval_and_restores(model, digits_small):
    xdir, ydir = make_directions(model)
    rm = model.bn1.running_mean.clone()
    eval_l, _ = PlaneEvaluator(model, digits_small, xdir, ydir, bn_mode="eval").evaluate([(0.4, 0.1)])
    rec_l, _ = PlaneEvaluator(model, digits_small, xdir, ydir, bn_mode="recompute").evaluate([(0.4, 0.1)])
    assert eval_l[0] != pytest.approx(rec_l[0], rel=1e-3)
    assert torch.equal(model.bn1.running_mean, rm)


def test_bf16_is_close_to_fp32(model, digits_small):
    xdir, ydir = make_directions(model)
    f32, _ = PlaneEvaluator(model, digits_small, xdir, ydir).evaluate([(0.2, 0.2)])
    b16, _ = PlaneEvaluator(model, digits_small, xdir, ydir, precision="bf16").evaluate([(0.2, 0.2)])
    assert b16[0] == pytest.approx(f32[0], rel=0.05) and b16[0] != f32[0]


def test_bad_settings(model, digits_small):
    xdir, ydir = make_directions(model)
    with pytest.raises(LandscapeError, match="precision"):
        PlaneEvaluator(model, digits_small, xdir, ydir, precision="fp8")
    with pytest.raises(LandscapeError, match="BN mode"):
        PlaneEvaluator(model, digits_small, xdir, ydir, bn_mode="train")
    with pytest.raises(LandscapeError, match="tensors"):
        PlaneEvaluator(model, digits_small, xdir[:-1], ydir)
    if not torch.cuda.is_available():
        with pytest.raises(LandscapeError, match="no CUDA GPU"):
            resolve_device("cuda")


@pytest.mark.parametrize("dir_type", ["weights", "states"])
@pytest.mark.parametrize("bn_mode", ["eval", "recompute"])
def test_batched_engine_matches_the_loop(model, digits_small, dir_type, bn_mode):
    """K points per step (stacked parameters + vmap, data read once per block) gives the loop's numbers."""
    xdir, ydir = make_directions(model, dir_type=dir_type, seed=4)
    coords = [(0.3, -0.2), (0.0, 0.0), (-0.7, 0.5), (0.1, 0.9), (1.0, -1.0)]
    loop = PlaneEvaluator(model, digits_small, xdir, ydir, dir_type, batch_size=64, bn_mode=bn_mode)
    batched = PlaneEvaluator(model, digits_small, xdir, ydir, dir_type, batch_size=64, bn_mode=bn_mode,
                             points_per_step=3)
    assert loop.points_per_step == 1 and batched.points_per_step == 3
    l1, a1 = loop.evaluate(coords)
    l2, a2 = batched.evaluate(coords)
    np.testing.assert_allclose(l2, l1, rtol=1e-5)
    assert a1 == a2
    if bn_mode == "eval":
        assert l2[1] == pytest.approx(loss_and_accuracy(model, digits_small)[0], rel=1e-6)


def test_out_of_memory_halves_points_then_batch(model, digits_small, monkeypatch):
    xdir, ydir = make_directions(model)
    ev = PlaneEvaluator(model, digits_small, xdir, ydir, batch_size=200, points_per_step=8)
    engine = ev.engine()
    real = engine.run
    seen = []

    def flaky(coords, *rest):
        seen.append((len(coords), ev.batch_size))
        if len(coords) * ev.batch_size > 400:  # pretend anything larger does not fit
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(coords, *rest)

    monkeypatch.setattr(engine, "run", flaky)
    coords = [(0.1 * i, -0.05 * i) for i in range(5)]
    losses, _ = ev.evaluate(coords)
    assert seen == [(5, 200), (4, 200), (2, 200), (2, 200), (1, 200)]
    assert ev.points_per_step == 2 and ev.batch_size == 200 and len(losses) == 5
    ref, _ = PlaneEvaluator(model, digits_small, xdir, ydir, batch_size=200).evaluate(coords)
    np.testing.assert_allclose(losses, ref, rtol=1e-5)
    # at one point per step, the batch is halved next
    one = PlaneEvaluator(model, digits_small, xdir, ydir, batch_size=200)
    loop = one.engine()
    real_loop = loop.run

    def flaky_loop(c):
        if one.batch_size > 100:
            raise torch.cuda.OutOfMemoryError("simulated")
        return real_loop(c)

    monkeypatch.setattr(loop, "run", flaky_loop)
    assert one.evaluate(coords)[0] == pytest.approx(ref, rel=1e-6) and one.batch_size == 100


def test_loop_engine_reads_results_back_once_per_call(model, digits_small, monkeypatch):
    """No host synchronisation per point: on a GPU the next point is queued while this one still runs."""
    xdir, ydir = make_directions(model)
    coords = [(0.1 * i, -0.05 * i) for i in range(5)]
    ev = PlaneEvaluator(model, digits_small, xdir, ydir, batch_size=64)
    expected = [loss_and_accuracy(_moved(model, xdir, ydir, a, b), digits_small, 64) for a, b in coords]
    reads = []
    for name in ("item", "tolist", "__float__"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name, lambda t, *a, _n=name, _r=real: reads.append(_n) or _r(t, *a))
    losses, accs = ev.evaluate(coords)
    monkeypatch.undo()
    assert reads == ["tolist"]
    assert losses == [lo for lo, _ in expected] and accs == [ac for _, ac in expected]  # exactly as before


def _moved(model, xdir, ydir, a, b):
    """A channels_last copy of ``model`` at theta* + a*dx + b*dy, built the engine's way (one rounding)."""
    m = copy.deepcopy(model).to(memory_format=torch.channels_last)
    with torch.no_grad():
        for p, dx, dy in zip(m.parameters(), xdir, ydir):
            step = dx * a
            step.add_(dy, alpha=b)
            p.copy_(p + step)
    return m


def test_cpu_picks_the_loop_engine(model, digits_small):
    xdir, ydir = make_directions(model)
    assert PlaneEvaluator(model, digits_small, xdir, ydir).points_per_step == 1
    with pytest.raises(LandscapeError, match="points-per-step"):
        PlaneEvaluator(model, digits_small, xdir, ydir, points_per_step=0)


def test_default_batch_sizes():
    gpu, cpu = torch.device("cuda"), torch.device("cpu")
    assert [default_batch_size(gpu, s) for s in ((3, 32, 32), (1, 8, 8), (1, 28, 28), (3, 224, 224))] == \
        [4096, 65536, 5349, 128]  # the same pixels per step up to 32x32
    assert [default_batch_size(cpu, s) for s in ((1, 8, 8), (3, 32, 32), (3, 224, 224))] == [512, 128, 32]


def test_gpu_step_plan_batches_points_only_when_the_data_is_smaller_than_a_batch():
    # 10,000 CIFAR images, ~200 kB per image, 80 GB free: the loop engine, three equal batches
    assert plan_gpu_step(10_000, 4096, 200e3, 80e9) == (3334, 1)
    assert plan_gpu_step(10_000, 4096, 200e3, 80e9, balance=False) == (4096, 1)  # a user's --batch-size is kept
    # 100 images: one batch of 100, and 40 points per step fill it up to 4,096 images
    assert plan_gpu_step(100, 4096, 200e3, 80e9) == (100, 40)
    assert plan_gpu_step(100, 8192, 200e3, 80e9) == (100, 64)  # at most max_points
    # free memory caps the batch (0.5 * 2 GB / 1 MB = 1,000 images), then K
    assert plan_gpu_step(10_000, 4096, 1e6, 2e9) == (1000, 1)
    assert plan_gpu_step(100, 4096, 1e6, 1e9) == (100, 5)
    assert plan_gpu_step(10_000, 4096, 1e6, 1e3) == (1, 1)  # nothing fits: one image, one point (OOM halving next)


def test_evaluate_autotunes_cudnn_only_while_it_runs(model, digits_small, monkeypatch):
    xdir, ydir = make_directions(model)
    ev = PlaneEvaluator(model, digits_small, xdir, ydir)
    seen = []
    loop = ev.engine()
    real = loop.run

    def spy(coords):
        seen.append(torch.backends.cudnn.benchmark)
        if len(seen) == 2:
            raise RuntimeError("boom")
        return real(coords)

    monkeypatch.setattr(loop, "run", spy)
    before = torch.backends.cudnn.benchmark
    ev.evaluate([(0.1, 0.1)])
    with pytest.raises(RuntimeError, match="boom"):
        ev.evaluate([(0.1, 0.1)])
    assert seen == [True, True] and torch.backends.cudnn.benchmark == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fold_bn", [False, True])
@pytest.mark.parametrize("precision,rtol", [("fp32", 1e-4), ("tf32", 5e-3), ("bf16", 2e-2)])
@pytest.mark.parametrize("points_per_step", [None, 1])  # None: 200 images < one batch, so the batched engine
def test_gpu_engines_match_cpu_fp32(model, digits_small, precision, rtol, fold_bn, points_per_step):
    xdir, ydir = make_directions(model)
    coords = [(0.3, -0.2), (0.0, 0.0), (-0.5, 0.5)]
    cpu, _ = PlaneEvaluator(model, digits_small, xdir, ydir).evaluate(coords)
    ev = PlaneEvaluator(model, digits_small.to("cuda"), xdir, ydir, precision=precision, fold_bn=fold_bn,
                        points_per_step=points_per_step)
    # the default GPU batch for 8x8 images is 65,536: 200 images leave room for the most points, 64
    assert ev.points_per_step == (points_per_step or 64) and ev.batch_size == 200
    np.testing.assert_allclose(ev.evaluate(coords)[0], cpu, rtol=rtol)


def _same_numbers(model, data, xdir, ydir, coords, base: dict, **variant):
    """The evaluator with ``variant`` settings gives ``base``'s losses (to 1e-5) and accuracies (exactly)."""
    l1, a1 = PlaneEvaluator(model, data, xdir, ydir, **base).evaluate(coords)
    l2, a2 = PlaneEvaluator(model, data, xdir, ydir, **base, **variant).evaluate(coords)
    np.testing.assert_allclose(l2, l1, rtol=1e-5)
    assert a1 == a2
    return l1, l2


@pytest.mark.parametrize("points_per_step", [1, 3])
@pytest.mark.parametrize("bn_mode,ignore", [("eval", "biasbn"), ("eval", "none"), ("recompute", "biasbn")])
def test_folded_bn_engine_matches_the_unfolded_one(model, digits_small, points_per_step, bn_mode, ignore):
    """BN folded into the convolutions, refolded per point (BN parameters perturbed too with ignore=none)."""
    xdir, ydir = make_directions(model, ignore=ignore, seed=5)
    coords = [(0.3, -0.2), (0.0, 0.0), (-0.7, 0.5), (1.0, -1.0)]
    l1, _ = _same_numbers(model, digits_small, xdir, ydir, coords, dict(batch_size=64, bn_mode=bn_mode),
                          points_per_step=points_per_step, fold_bn=True)
    assert l1[0] != l1[2]  # the points differ, so equality above is not vacuous


@pytest.mark.parametrize("points_per_step,bn_mode", [(1, "eval"), (2, "eval"), (1, "recompute")])
def test_compiled_engine_matches_eager_and_follows_each_point(model, digits_small, points_per_step, bn_mode):
    """torch.compile'd forwards (compiled once; weights and, with recompute, BN statistics changed in place per
    point) give the eager numbers."""
    xdir, ydir = make_directions(model, seed=6)
    coords = [(0.3, -0.2), (0.0, 0.0), (-0.7, 0.5), (1.0, -1.0), (0.5, 0.5)]  # K=2: the last block is padded
    l1, l2 = _same_numbers(model, digits_small, xdir, ydir, coords, dict(batch_size=100, bn_mode=bn_mode),
                           points_per_step=points_per_step, compile_model=True)
    assert len(l2) == 5 and len(set(l1)) == 5


def test_compile_failure_is_one_clear_error(model, digits_small, monkeypatch):
    xdir, ydir = make_directions(model)
    ev = PlaneEvaluator(model, digits_small, xdir, ydir, compile_model=True)

    def broken(fn):
        def run(*a, **k):
            raise RuntimeError("InductorError: no working C++ compiler found\nlong traceback ...")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.raises(LandscapeError, match=r"torch.compile failed \(RuntimeError: InductorError: no working C\+\+ "
                                             r"compiler found\); run without --compile"):
        ev.evaluate([(0.1, 0.1)])
