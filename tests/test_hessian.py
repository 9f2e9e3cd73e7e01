"""Curvature (landscape.hessian) against the exact Hessian of small models, plus the CLI on a shipped checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

from landscape.cli import run
from landscape.errors import LandscapeError
from landscape.hessian import (HessianOperator, extreme_eigenpairs, hutchinson_trace, min_eigenpair, select_parameters,
                               slq_density, top_eigenpairs)
from landscape.hessian.__main__ import main as hessian_main
from landscape.hessian.io import read_hessian_file
from landscape.surface import read_direction

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
R20 = os.path.join(ROOT, "checkpoints", "resnet20_digits.pt")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: one thread is faster, and stays fast when other jobs share the 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 4)).double()


def tiny_cnn() -> nn.Module:
    """Conv-BN-tanh twice and a linear head, BN with non-default running statistics (eval mode matters)."""
    torch.manual_seed(1)
    m = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.Tanh(), nn.Conv2d(3, 4, 3, stride=2),
                      nn.BatchNorm2d(4), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 2 * 2, 5)).double()
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.num_features, generator=g, dtype=torch.float64) * 0.2)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g, dtype=torch.float64) + 0.5)
                mod.weight.copy_(torch.rand(mod.num_features, generator=g, dtype=torch.float64) + 0.5)
                mod.bias.copy_(torch.randn(mod.num_features, generator=g, dtype=torch.float64) * 0.1)
    return m.eval()


def data_for(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    if kind == "mlp":
        return torch.randn(37, 6, generator=g, dtype=torch.float64), torch.randint(0, 4, (37,), generator=g)
    return torch.randn(23, 1, 6, 6, generator=g, dtype=torch.float64), torch.randint(0, 5, (23,), generator=g)


def exact_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: list[str]) -> torch.Tensor:
    """``torch.autograd.functional.hessian`` of the mean cross-entropy over the flattened named parameters."""
    params = dict(model.named_parameters())
    flat0 = torch.cat([params[n].detach().reshape(-1) for n in names])

    def f(flat: torch.Tensor) -> torch.Tensor:
        d, i = {}, 0
        for n in names:
            d[n] = flat[i:i + params[n].numel()].view_as(params[n])
            i += params[n].numel()
        return F.cross_entropy(functional_call(model, d, (x,)), y)

    return torch.autograd.functional.hessian(f, flat0)


@pytest.fixture(scope="module", params=["mlp", "cnn"])
def case(request):
    model = mlp() if request.param == "mlp" else tiny_cnn()
    x, y = data_for(request.param)
    out = {}
    for params in ("weights", "all"):
        names, _ = select_parameters(model, params)
        H = exact_hessian(model, x, y, names)
        out[params] = (H, torch.linalg.eigh(H))
    return request.param, model, x, y, out


def rel(a, b) -> float:
    return float(abs(a - b) / abs(b))


@pytest.mark.parametrize("method", ["double_backward", "forward_over_reverse"])
@pytest.mark.parametrize("params", ["weights", "all"])
def test_hvp_equals_full_hessian_times_v(case, method, params):
    _, model, x, y, exact = case
    H = exact[params][0]
    for bs in (5, None):  # uneven batches and one batch: the mean over N must not depend on the split
        op = HessianOperator(model, x, y, params=params, batch_size=bs, method=method)
        v = torch.randn(op.dim, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        hv = op.matvec(v)
        assert hv.shape == (op.dim,) and op.dim == H.shape[0]
        torch.testing.assert_close(hv, H @ v, rtol=1e-10, atol=1e-12)
    assert not model.training


def test_hvp_float32_close_to_float64(case):
    _, model, x, y, exact = case
    H = exact["weights"][0]
    m32 = (mlp() if case[0] == "mlp" else tiny_cnn()).float()
    op = HessianOperator(m32, x.float(), y)
    v = torch.randn(op.dim, generator=torch.Generator().manual_seed(5))
    hv = op.matvec(v)
    assert hv.dtype == torch.float32
    ref = H @ v.double()
    assert float((hv.double() - ref).norm() / ref.norm()) < 1e-5
    evals = exact["weights"][1][0]
    hi, lo = extreme_eigenpairs(op, top=2, bottom=1, seed=0)  # float32 Lanczos: float32 accuracy
    assert hi.eigenvectors.dtype == torch.float32 and hi.converged
    assert rel(hi.eigenvalues[0], evals[-1]) < 1e-5 and rel(hi.eigenvalues[1], evals[-2]) < 1e-5
    assert abs(float(lo.eigenvalues[0] - evals[0])) < 1e-5 * float(evals[-1])


def test_top_eigenpairs_match_eigh(case):
    _, model, x, y, exact = case
    H, (evals, evecs) = exact["weights"]
    op = HessianOperator(model, x, y)
    res = top_eigenpairs(op, k=3, seed=0)
    assert res.converged
    for i in range(3):
        assert rel(res.eigenvalues[i], evals[-1 - i]) < 1e-5
        assert abs(float(res.eigenvectors[i] @ evecs[:, -1 - i])) > 1 - 1e-6
    assert torch.all(res.eigenvalues[:-1] >= res.eigenvalues[1:])  # descending
    torch.testing.assert_close(res.eigenvectors.norm(dim=1), torch.ones(3, dtype=torch.float64))
    # The estimated residuals are the true ones: ||H u - lambda u||.
    true_res = (H @ res.eigenvectors.T - res.eigenvectors.T * res.eigenvalues).norm(dim=0)
    assert float(true_res.max()) < 1e-5 * float(evals.abs().max())


def test_min_eigenvalue_matches_eigh(case):
    _, model, x, y, exact = case
    for params in ("weights", "all"):
        H, (evals, evecs) = exact[params]
        op = HessianOperator(model, x, y, params=params)
        lo = min_eigenpair(op, seed=1)
        scale = float(evals.abs().max())
        assert lo.converged and evals[0] < 0  # these nets are not at a minimum: a negative direction exists
        assert abs(float(lo.eigenvalues[0] - evals[0])) < 1e-6 * scale
        assert float(lo.eigenvectors[0] @ H @ lo.eigenvectors[0]) == pytest.approx(float(evals[0]), abs=1e-6 * scale)
        # Both ends from one run agree with separate runs.
        hi, lo2 = extreme_eigenpairs(op, top=2, bottom=1, seed=1)
        assert rel(hi.eigenvalues[0], evals[-1]) < 1e-5 and abs(float(lo2.eigenvalues[0] - evals[0])) < 1e-6 * scale


def test_trace_hutchinson_within_three_se(case):
    _, model, x, y, exact = case
    H = exact["all"][0]
    op = HessianOperator(model, x, y, params="all")
    est = hutchinson_trace(op, samples=60, seed=7)
    assert est.samples.shape == (60,) and est.se > 0
    assert abs(est.trace - float(H.trace())) < 3 * est.se
    # Each probe value is z^T H z with the +-1 probe: check one exactly.
    z = torch.randint(0, 2, (op.dim,), generator=torch.Generator().manual_seed(7), dtype=torch.int8).double() * 2 - 1
    assert float(est.samples[0]) == pytest.approx(float(z @ H @ z), rel=1e-10)


def test_params_weights_excludes_one_dimensional_tensors():
    model = tiny_cnn()
    names, tensors = select_parameters(model, "weights")
    assert names == ["0.weight", "3.weight", "7.weight"] and all(t.dim() > 1 for t in tensors)
    all_names, _ = select_parameters(model, "all")
    assert all_names == [n for n, _ in model.named_parameters()]
    x, y = data_for("cnn")
    op = HessianOperator(model, x, y)
    assert op.dim == sum(p.numel() for p in model.parameters() if p.dim() > 1) == 27 + 108 + 80
    op_named = HessianOperator(model, x, y, params=["7.weight", "0.weight"])  # parameters() order, not the list's
    assert op_named.names == ["0.weight", "7.weight"]
    # A full direction covers every parameter, with zeros outside the selection.
    v = torch.arange(op.dim, dtype=torch.float64)
    full_names, full = op.full_direction(v)
    assert full_names == all_names and len(full) == len(all_names)
    assert float(full[1].abs().sum()) == 0.0 and torch.equal(full[0].reshape(-1), v[:27])
    assert torch.equal(op.flatten(op.unflatten(v)), v)


def test_deterministic_given_seed(case):
    _, model, x, y, _ = case
    op = HessianOperator(model, x, y)
    a, b = top_eigenpairs(op, 2, seed=11), top_eigenpairs(op, 2, seed=11)
    assert torch.equal(a.eigenvalues, b.eigenvalues) and torch.equal(a.eigenvectors, b.eigenvectors)
    t1, t2, t3 = (hutchinson_trace(op, 4, seed=s) for s in (3, 3, 4))
    assert torch.equal(t1.samples, t2.samples) and not torch.equal(t1.samples, t3.samples)


def test_perturbed_point_uses_live_parameters(case):
    """The operator follows the model: moving the weights to theta + a*d changes H to the Hessian there."""
    kind, _, x, y, _ = case
    model = mlp() if kind == "mlp" else tiny_cnn()
    op = HessianOperator(model, x, y)
    before = top_eigenpairs(op, 1, seed=0)
    d = torch.randn(op.dim, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    with torch.no_grad():
        for p, dp in zip(op.params, op.unflatten(0.3 * d)):
            p.add_(dp)
    lam = torch.linalg.eigvalsh(exact_hessian(model, x, y, op.names))
    assert rel(lam[-1], before.eigenvalues[0]) > 1e-2  # the point moved far enough to matter
    assert rel(top_eigenpairs(op, 1, seed=0).eigenvalues[0], lam[-1]) < 1e-5
    # Warm start from the old point's eigenvector (how a curvature map walks a grid): same answer.
    warm, low = extreme_eigenpairs(op, top=1, bottom=1, v0=before.eigenvectors[0])
    assert rel(warm.eigenvalues[0], lam[-1]) < 1e-5 and abs(float(low.eigenvalues[0] - lam[0])) < 1e-6 * float(lam[-1])


def test_repeated_eigenvalues_found_after_restart():
    """An invariant Krylov subspace (repeated eigenvalues) is left by a restart, so both copies are found."""

    class Diag:
        dim, dtype, device, calls = 8, torch.float64, torch.device("cpu"), 0

        def matvec(self, v):
            return torch.tensor([5.0, 5.0, 3.0, 1.0, 0.0, 0.0, 0.0, -2.0], dtype=torch.float64) * v

    hi, lo = extreme_eigenpairs(Diag(), top=3, bottom=1, seed=0)
    assert hi.eigenvalues.tolist() == pytest.approx([5.0, 5.0, 3.0], abs=1e-12)
    assert float(lo.eigenvalues[0]) == pytest.approx(-2.0, abs=1e-12)
    assert abs(float(hi.eigenvectors[0] @ hi.eigenvectors[1])) < 1e-12  # two orthogonal vectors for the pair

    class Quadruple(Diag):
        def matvec(self, v):
            return torch.tensor([2.0, 1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 1.0], dtype=torch.float64) * v

    hi, lo = extreme_eigenpairs(Quadruple(), top=4, bottom=3, seed=0)
    assert hi.converged and hi.eigenvalues.tolist() == pytest.approx([2.0] * 4, abs=1e-12)
    assert lo.eigenvalues.tolist() == pytest.approx([1.0] * 3, abs=1e-12)
    torch.testing.assert_close(hi.eigenvectors @ hi.eigenvectors.T, torch.eye(4, dtype=torch.float64))


def test_slq_density_moments(case):
    _, model, x, y, exact = case
    H, (evals, _) = exact["weights"]
    op = HessianOperator(model, x, y)
    dens = slq_density(op, steps=op.dim, runs=2, seed=0)
    w = dens.weights
    assert torch.allclose(w.sum(1), torch.ones(2, dtype=torch.float64), atol=1e-12)
    integral = float(torch.trapezoid(dens.density, dens.grid))
    assert integral == pytest.approx(1.0, abs=1e-3)
    # The quadrature's first moment is v0^T H v0 exactly; its nodes lie inside the spectrum.
    g = torch.Generator().manual_seed(0)
    v0 = torch.randn(op.dim, generator=g, dtype=torch.float64)
    v0 = v0 / v0.norm()
    ok = ~torch.isnan(dens.nodes[0])
    assert float((dens.nodes[0][ok] * w[0][ok]).sum()) == pytest.approx(float(v0 @ H @ v0), rel=1e-8)
    nodes = dens.nodes[~torch.isnan(dens.nodes)]
    assert float(nodes.max()) <= float(evals[-1]) * (1 + 1e-9) and float(nodes.min()) >= float(evals[0]) * (1 + 1e-9)
    assert float(nodes.max()) == pytest.approx(float(evals[-1]), rel=1e-8)  # a full Krylov space reaches the top


def test_custom_loss_callables_agree_with_cross_entropy():
    model = mlp()
    x, y = data_for("mlp")
    v = torch.randn(sum(p.numel() for p in model.parameters() if p.dim() > 1), dtype=torch.float64)
    ref = HessianOperator(model, x, y).matvec(v)
    per_sample = HessianOperator(model, x, y, loss=lambda o, t: F.cross_entropy(o, t, reduction="none"), batch_size=6)
    mean = HessianOperator(model, x, y, loss=F.cross_entropy, batch_size=6)
    torch.testing.assert_close(per_sample.matvec(v), ref, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(mean.matvec(v), ref, rtol=1e-10, atol=1e-13)
    assert HessianOperator(model, x, y).loss() == pytest.approx(float(F.cross_entropy(model(x), y).detach()), rel=1e-12)


def test_surface_losses_by_name_match_their_exact_hessians():
    """``loss='mse'`` (the reference's softmax vs one-hot) and ``'nll'`` are the surface's losses, by name."""
    model = mlp()
    x, y = data_for("mlp")
    names = [n for n, p in model.named_parameters() if p.dim() > 1]
    params = dict(model.named_parameters())
    flat0 = torch.cat([params[n].detach().reshape(-1) for n in names])
    v = torch.randn(flat0.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    losses = {"mse": lambda o: (F.softmax(o, 1) - F.one_hot(y, o.shape[1]).double()).pow(2).mean(),
              "nll": lambda o: F.nll_loss(F.log_softmax(o, 1), y)}
    for name, ref in losses.items():
        def f(flat, ref=ref):
            d, i = {}, 0
            for n in names:
                d[n] = flat[i:i + params[n].numel()].view_as(params[n])
                i += params[n].numel()
            out = functional_call(model, d, (x,))
            return ref(out)

        H = torch.autograd.functional.hessian(f, flat0)
        net = nn.Sequential(model, nn.LogSoftmax(dim=1)) if name == "nll" else model
        torch.testing.assert_close(HessianOperator(net, x, y, loss=name, batch_size=10).matvec(v), H @ v,
                                   rtol=1e-9, atol=1e-12)


def test_bad_inputs_are_one_line_errors():
    model = mlp()
    x, y = data_for("mlp")
    op = HessianOperator(model, x, y)
    cases = [
        lambda: top_eigenpairs(op, k=op.dim + 1),
        lambda: HessianOperator(nn.Sequential(nn.Tanh()), x, y),  # no trainable tensors
        lambda: HessianOperator(nn.Linear(6, 4).requires_grad_(False), x, y),
        lambda: HessianOperator(nn.Sequential(nn.Linear(6, 4, bias=True)), x, y, params=["nope"]),
        lambda: HessianOperator(model, x, y, params="biases"),
        lambda: HessianOperator(model, x, y[:5]),
        lambda: HessianOperator(model, x, y, batch_size=0),
        lambda: HessianOperator(model, x, y, method="finite_differences"),
        lambda: HessianOperator(model, x, y, loss="hinge"),
        lambda: HessianOperator(model, x, y, loss=lambda o, t: o).matvec(torch.zeros(op.dim)),
        lambda: op.matvec(torch.zeros(op.dim + 1)),
        lambda: hutchinson_trace(op, samples=0),
        lambda: extreme_eigenpairs(op, top=0, bottom=0),
        lambda: slq_density(op, steps=0),
    ]
    for i, f in enumerate(cases):
        with pytest.raises(LandscapeError) as e:
            f()
        assert "\n" not in str(e.value) and str(e.value), i


def test_cli_on_shipped_resnet20(tmp_path, capsys):
    out = str(tmp_path / "r20_hessian.h5")
    rc = run(hessian_main, ["--ckpt", R20, "--samples", "64", "--top", "2", "--trace-samples", "3", "--density",
                            "--density-steps", "6", "--device", "cpu", "--out", out], prog="landscape.hessian")
    printed = capsys.readouterr().out
    assert rc == 0 and os.path.isfile(out)
    assert [f for f in os.listdir(tmp_path) if f != "r20_hessian.h5"] == []  # no temporary file left behind
    f = read_hessian_file(out)
    ev = f["eigenvalues"]
    assert ev.shape == (2,) and ev[0] >= ev[1] > 0 and f["min_eigenvalue"] < ev[1]
    assert f"top eigenvalues: {ev[0]:.6g}, {ev[1]:.6g}" in printed and f"trace: {f['trace']:.6g}" in printed
    assert np.isfinite(f["trace"]) and f["trace_se"] > 0 and f["trace_samples"].shape == (3,)
    a = f["attrs"]
    assert a["n_samples"] == 64 and a["params"] == "weights" and a["seed"] == 0 and a["dataset"] == "digits"
    assert a["ckpt"] == R20 and len(a["sha256"]) == 64 and a["torch_version"] == torch.__version__
    d = f["density"]
    assert d["grid"].shape == d["density"].shape and np.all(d["density"] >= 0)
    # The eigenvectors are direction groups over all parameters (zeros for BN/biases), unit norm, in
    # parameters() order, readable with the surface module's reader.
    from landscape.checkpoints import load_checkpoint
    from landscape.data import load_data

    model, _ = load_checkpoint(R20)
    with h5py.File(out, "r") as h5:
        vec, names = read_direction(h5, "eigenvectors/0")
    assert names == [n for n, _ in model.named_parameters()]
    assert [v.shape for v in vec] == [tuple(p.shape) for p in model.parameters()]
    assert all(float(np.abs(v).sum()) == 0.0 for v, p in zip(vec, model.parameters()) if p.dim() <= 1)
    assert np.sqrt(sum(float((v.astype(np.float64) ** 2).sum()) for v in vec)) == pytest.approx(1.0, abs=1e-5)
    # An independent check of the stored pair: the Rayleigh quotient u^T H u is the stored eigenvalue.
    d64 = load_data("digits", "train", samples=64)
    op = HessianOperator(model, d64.x, d64.y)
    u = op.flatten([torch.from_numpy(v) for v, p in zip(vec, model.parameters()) if p.dim() > 1])
    assert float(u @ op.matvec(u)) == pytest.approx(float(ev[0]), rel=1e-4)


@pytest.mark.parametrize("argv, needle", [
    (["--top", "0"], "--top must be at least 1"),
    (["--top", "300000"], "exceeds the 270608 parameters"),
    (["--trace-samples", "-1"], "--trace-samples must be >= 0"),
    (["--samples", "0"], "--samples must be a positive integer"),
    (["--batch-size", "0"], "batch size must be a positive integer"),
    (["--max-iter", "1", "--top", "2"], "max_iter (1) must be at least"),
    (["--params", "biases"], "invalid choice"),
    (["--out", "/nonexistent_dir/x.h5"], "missing or not writable"),
])
def test_cli_bad_inputs_exit_2_with_one_line(tmp_path, capsys, argv, needle):
    base = ["--ckpt", R20, "--samples", "8", "--device", "cpu", "--out", str(tmp_path / "h.h5")]
    try:
        rc = run(hessian_main, base + argv, prog="landscape.hessian")
    except SystemExit as e:  # argparse's own errors exit from inside parse_args
        rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and err.count("\n") == 1, err
    assert not os.path.exists(tmp_path / "h.h5")


def test_cli_module_entry_point_missing_checkpoint(tmp_path):
    p = subprocess.run([sys.executable, "-m", "landscape.hessian", "--ckpt", str(tmp_path / "none.pt"), "--out",
                        str(tmp_path / "h.h5")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.startswith("landscape.hessian: error: checkpoint not found")
    assert p.stderr.count("\n") == 1


def test_curvature_file_round_trip_and_refusals(tmp_path):
    from landscape.hessian.compute import curvature_at, write_curvature

    model = tiny_cnn()
    x, y = data_for("cnn")
    op = HessianOperator(model, x, y)
    res = curvature_at(op, top=2, trace_samples=3, density_steps=4, seed=5)
    assert res.hvps == res.top.iterations + 3 + 4 and res.min_eigenvalue < 0 < res.eigenvalues[1]
    out = str(tmp_path / "c.h5")
    write_curvature(out, op, res)
    f = read_hessian_file(out)
    np.testing.assert_array_equal(f["eigenvalues"], res.top.eigenvalues.numpy())
    assert f["min_eigenvalue"] == res.min_eigenvalue and f["trace"] == res.trace.trace
    assert f["selected"].tolist() == [p.dim() > 1 for p in model.parameters()]
    u = op.flatten([torch.from_numpy(v) for v, s in zip(f["min_eigenvector"], f["selected"]) if s])
    assert abs(float(u @ res.smallest.eigenvectors[0])) > 1 - 1e-6  # stored as float32
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["eigenvalues"] = [1.0]
    for bad in (str(tmp_path / "other.h5"), str(tmp_path / "missing.h5")):
        with pytest.raises(LandscapeError):
            read_hessian_file(bad)
    with pytest.raises(LandscapeError, match="does not exist"):
        write_curvature(str(tmp_path / "no" / "c.h5"), op, res)
    assert sorted(os.listdir(tmp_path)) == ["c.h5", "other.h5"]


def test_a_curvature_file_declaring_more_than_ours_hold_is_refused_before_reading(tmp_path, monkeypatch):
    """A foreign curvature file cannot make the reader allocate what it declares: sizes are checked first (series,
    eigenvectors' shapes from one vector to the next, their bytes against the memory available, links)."""
    import landscape.surface.validate as V
    from landscape.hessian.io import FORMAT, MAX_SERIES

    def make(name, change=None):
        p = str(tmp_path / name)
        with h5py.File(p, "w") as f:
            f.attrs["format"] = FORMAT
            f["eigenvalues"], f["residuals"] = [2.0, 1.0], [0.0, 0.0]
            for k in ("0", "1"):
                g = f.create_group(f"eigenvectors/{k}")
                g["0"], g["1"] = np.zeros((4, 3), np.float32), np.zeros(5, np.float32)
                g.attrs["names"], g.attrs["selected"] = ["w", "b"], [True, True]
            if change is not None:
                change(f)
        return p

    def replace(f, key, **declared):  # a dataset declared (shape, dtype) but never written: the file stays small
        del f[key]
        f.create_dataset(key, **declared)

    assert read_hessian_file(make("ok.h5"))["eigenvalues"].tolist() == [2.0, 1.0]  # the honest file reads
    huge = make("huge.h5", lambda f: replace(f, "eigenvalues", shape=(MAX_SERIES + 1,), dtype="f8"))
    with pytest.raises(LandscapeError, match="declares 100,001 values"):
        read_hessian_file(huge)
    odd = make("odd.h5", lambda f: replace(f, "eigenvectors/1/0", shape=(4, 4), dtype="f4"))
    with pytest.raises(LandscapeError, match="differ in shape"):
        read_hessian_file(odd)

    def big_vectors(f):
        for k in "01":
            replace(f, f"eigenvectors/{k}/1", shape=(2 ** 33,), dtype="f4")

    big = make("big.h5", big_vectors)
    assert os.path.getsize(big) < 1e6  # declared, not written
    monkeypatch.setattr(V, "mem_available", lambda: 16 * 2 ** 30)
    with pytest.raises(LandscapeError, match=r"declare 64\.0 GiB, more than half the memory available \(16\.0 GiB\)"):
        read_hessian_file(big)
    other = make("other.h5")

    def linked_vector(f):
        del f["eigenvectors/0/0"]
        f["eigenvectors/0/0"] = h5py.ExternalLink(other, "/eigenvalues")

    with pytest.raises(LandscapeError, match="link to another file"):
        read_hessian_file(make("linked.h5", linked_vector))
