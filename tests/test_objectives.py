"""Any batch structure, any model output, objectives without targets: a hand-written language model, a PINN, an
autoencoder, two-input models, dict batches; each value checked against the same quantity computed by hand."""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.errors import LandscapeError
from landscape.surface import read_surface
from byhand import POINTS, crash_and_resume, moved

GRID = dict(x="-1:1:3", y="-1:1:3", render=False, progress=False)


# -- a language model written in plain PyTorch ---------------------------------------------------------------------
class TinyLM(nn.Module):
    """A causal language model in plain PyTorch: (B, T) token ids -> (B, T, V) logits."""

    def __init__(self, vocab=17, dim=16):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(12, dim) * 0.1)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab)

    def forward(self, ids):
        h = self.emb(ids) + self.pos[:ids.shape[1]]
        causal = torch.tril(torch.ones(ids.shape[1], ids.shape[1], device=ids.device))
        h = h + (causal / causal.sum(1, keepdim=True)) @ torch.tanh(self.mix(h))  # mean of the past: causal
        return self.head(h)


@pytest.fixture(scope="module")
def lm_data():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 17, (40, 12), generator=g)
    targets = torch.roll(ids, -1, 1)
    targets[:, -1] = -100  # nothing to predict after the last token
    targets[::3, :5] = -100  # and sequences with different numbers of targets (prompts masked out)
    return ids, targets


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(1)
    return TinyLM().eval()


def token_loss(model, ids, targets):
    """The mean token cross-entropy over all non-ignored tokens, and the token accuracy, by hand."""
    with torch.no_grad():
        out = model(ids).double()
    keep = targets != -100
    ce = F.cross_entropy(out[keep], targets[keep], reduction="sum") / keep.sum()
    acc = (out.argmax(-1)[keep] == targets[keep]).double().mean() * 100
    return float(ce), float(acc)


def test_a_plain_pytorch_language_model_gets_the_token_loss_by_default(tmp_path, lm, lm_data):
    """(B, T, V) logits and (B, T) targets: the token cross-entropy over all non-ignored tokens (batches of 7
    sequences hold different numbers of targets: not a mean of batch means), token accuracy, at theta* and off it."""
    ids, targets = lm_data
    res = landscape.compute(lm, data=(ids, targets), out=str(tmp_path), batch_size=7, **GRID)
    s = read_surface(res.path)
    assert s.attrs["loss"] == "cross_entropy" and "non-ignored target tokens" in s.attrs["loss_weighting"]
    for i, j in POINTS:
        want_loss, want_acc = token_loss(moved(lm, res.path, i, j), ids, targets)
        assert s.values["train_loss"][i, j] == pytest.approx(want_loss, rel=1e-6, abs=1e-6)
        assert s.values["train_acc"][i, j] == pytest.approx(want_acc, rel=1e-9)
    # a mean of per-batch means differs by over 100x the tolerance above: the test would catch it
    batch_means = [token_loss(lm, ids[k:k + 7], targets[k:k + 7])[0] for k in range(0, 40, 7)]
    assert abs(np.mean(batch_means) - s.values["train_loss"][1, 1]) > 100 * 1e-6 * s.values["train_loss"][1, 1]


def test_token_loss_error_bars_under_adaptive_sampling_are_the_ratio_estimators(tmp_path, lm, lm_data):
    """--tolerance over sequences of different lengths: a stopped point's value is the token loss of the samples it
    read (the seeded permutation's first n), its standard error the ratio estimator's, all by hand."""
    ids, targets = lm_data
    res = landscape.compute(lm, data=(ids, targets), out=str(tmp_path), tolerance=50.0, min_samples=8, seed=5,
                            one_d=True, x="-0.5:0.5:3", render=False, progress=False)
    s = read_surface(res.path)
    n = int(s.values["train_n"][1])
    assert n == 12  # stopped at the second check: 8, then 12 of 40
    order = np.random.RandomState(5).permutation(40)[:n]
    with torch.no_grad():
        out = lm(ids[order]).double()
    t = targets[order]
    keep = t != -100
    per = F.cross_entropy(out.movedim(-1, 1), t, reduction="none", ignore_index=-100).sum(1).numpy()
    w = keep.sum(1).double().numpy()
    r = per.sum() / w.sum()
    se = math.sqrt(((per - r * w) ** 2).sum() / (n - 1) * n * (1 - n / 40)) / w.sum()
    assert s.values["train_loss"][1] == pytest.approx(r, rel=1e-7)
    assert s.values["train_loss_se"][1] == pytest.approx(se, rel=1e-6)


def test_a_language_model_resumes_after_a_crash_with_the_same_values(tmp_path, lm, lm_data):
    ids, targets = lm_data
    full = landscape.compute(lm, data=(ids, targets), out=str(tmp_path), name="full", **GRID)
    done, again = crash_and_resume(lm, 4, data=(ids, targets), out=str(tmp_path), name="resumed", **GRID)
    assert 0 < done < 9 and again.computed == 9 - done
    np.testing.assert_array_equal(read_surface(again.path).values["train_loss"],
                                  read_surface(full.path).values["train_loss"])


def test_a_language_model_on_train_and_test_splits(tmp_path, lm, lm_data):
    ids, targets = lm_data
    res = landscape.compute(lm, data={"train": (ids[:30], targets[:30]), "test": (ids[30:], targets[30:])},
                            out=str(tmp_path), **GRID)
    s = read_surface(res.path)
    for i, j in POINTS:
        m = moved(lm, res.path, i, j)
        assert s.values["test_loss"][i, j] == pytest.approx(token_loss(m, ids[30:], targets[30:])[0], rel=1e-6)
        assert s.values["train_acc"][i, j] == pytest.approx(token_loss(m, ids[:30], targets[:30])[1], rel=1e-9)


def test_segmentation_outputs_get_the_pixel_loss(tmp_path):
    """(B, C, H, W) logits with (B, H, W) targets: the mean over all non-ignored pixels."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1)).eval()
    x = torch.randn(10, 1, 6, 6)
    y = torch.randint(0, 3, (10, 6, 6))
    y[:4, :2] = -100
    res = landscape.compute(net, data=(x, y), out=str(tmp_path), one_d=True, x="-1:1:3", render=False,
                            progress=False)
    s = read_surface(res.path)
    with torch.no_grad():
        want = F.cross_entropy(moved(net, res.path, 0, 2)(x), y, ignore_index=-100)
    assert s.values["train_loss"][2] == pytest.approx(float(want), rel=1e-6)


# -- objectives: a PINN and an autoencoder -------------------------------------------------------------------------
def laplace_residual(model, batch):
    """A physics-informed loss: (u_xx + u_yy)^2 at collocation points, by autograd with respect to the inputs."""
    x = batch.clone().requires_grad_(True)
    u = model(x)
    (g,) = torch.autograd.grad(u.sum(), x, create_graph=True)
    lap = sum(torch.autograd.grad(g[:, k].sum(), x, create_graph=True)[0][:, k] for k in range(2))
    return lap.pow(2)


def pinn():
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 1)).eval()


def test_a_pinn_objective_differentiates_with_respect_to_its_inputs(tmp_path):
    net = pinn()
    pts = torch.rand(50, 2)
    before = copy.deepcopy(net.state_dict())
    res = landscape.compute(net, data=pts, objective=laplace_residual, out=str(tmp_path), batch_size=16, **GRID)
    s = read_surface(res.path)
    assert s.attrs["loss"] == "objective:test_objectives.laplace_residual" and "train_acc" not in s.values
    for i, j in POINTS:
        want = float(laplace_residual(moved(net, res.path, i, j), pts).mean().detach())
        assert s.values["train_loss"][i, j] == pytest.approx(want, rel=1e-6)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    assert all(p.requires_grad for p in net.parameters())  # frozen only while evaluating
    with pytest.raises(LandscapeError, match=r"loss: file has 'objective:test_objectives.laplace_residual', this "
                                             r"run 'objective:test_objectives\..*<lambda>'"):
        landscape.compute(net, data=pts, objective=lambda m, b: laplace_residual(m, b).mean(), out=str(tmp_path),
                          **GRID)


def test_a_pinn_resumes_and_its_error_bars_are_per_sample(tmp_path):
    net = pinn()
    pts = torch.rand(50, 2)
    common = dict(data=pts, objective=laplace_residual, batch_size=16, out=str(tmp_path))
    full = landscape.compute(net, name="full", **common, **GRID)
    done, again = crash_and_resume(net, 2 + 4 * 3, name="resumed", **common, **GRID)  # 2 probes, 4 batches a point
    assert done == 3 and again.computed == 6
    np.testing.assert_array_equal(read_surface(again.path).values["train_loss"],
                                  read_surface(full.path).values["train_loss"])
    res = landscape.compute(net, name="adaptive", tolerance=10.0, min_samples=10, seed=1, one_d=True,
                            x="-0.5:0.5:3", render=False, progress=False, **common)
    s = read_surface(res.path)
    n = int(s.values["train_n"][1])
    assert n == 15  # stopped at the second check: 10, then 15 of 50
    per = laplace_residual(net, pts[np.random.RandomState(1).permutation(50)[:n]]).detach().double().numpy()
    assert s.values["train_loss"][1] == pytest.approx(per.mean(), rel=1e-6)
    assert s.values["train_loss_se"][1] == pytest.approx(per.std(ddof=1) / math.sqrt(n) * math.sqrt(1 - n / 50),
                                                         rel=1e-5)


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc, self.dec = nn.Linear(64, 8), nn.Linear(8, 64)

    def forward(self, x):
        return self.dec(torch.relu(self.enc(x.flatten(1)))).view_as(x)


def reconstruction(model, batch):
    x = batch[0] if isinstance(batch, tuple) else batch
    return (model(x) - x).pow(2).flatten(1).mean(1)


def test_an_autoencoder_by_objective_and_by_mse_on_inputs_as_targets(tmp_path, digits_small):
    torch.manual_seed(3)
    net = AutoEncoder().eval()
    x = digits_small.x[:60]
    a = landscape.compute(net, data=x, objective=reconstruction, out=str(tmp_path), name="a", **GRID)
    b = landscape.compute(net, data=(x, x), loss="mse", out=str(tmp_path), name="b", **GRID)
    sa, sb = read_surface(a.path), read_surface(b.path)
    for i, j in POINTS:
        with torch.no_grad():
            want = float(F.mse_loss(moved(net, a.path, i, j)(x), x))
        assert sa.values["train_loss"][i, j] == pytest.approx(want, rel=1e-6)
    np.testing.assert_allclose(sa.values["train_loss"], sb.values["train_loss"], rtol=1e-6)


def test_an_objective_from_the_command_line(tmp_path, digits_small):
    """--objective FILE.py:FN on a checkpoint of a user's autoencoder (--model FILE.py:build)."""
    from landscape.plot import main as plot_main

    code = tmp_path / "ae.py"
    code.write_text("import torch, torch.nn as nn\n\n"
                    "def build():\n"
                    "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 64),\n"
                    "                         nn.Unflatten(1, (1, 8, 8)))\n\n"
                    "def recon(model, batch):\n"
                    "    x, _ = batch\n"
                    "    return (model(x) - x).pow(2).flatten(1).mean(1)\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("ae_mod", code)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(4)
    net = mod.build().eval()
    torch.save(net.state_dict(), tmp_path / "ae.pt")
    out = tmp_path / "out"
    assert plot_main(["--ckpt", str(tmp_path / "ae.pt"), "--model", f"{code}:build", "--objective",
                      f"{code}:recon", "--data", "digits", "--normalization", "dataset", "--samples", "40", "--1d",
                      "--x", "-1:1:3", "--quiet", "--no-render", "--out", str(out)]) == 0
    s = read_surface(str(out / "ae_1d.h5"))
    x = digits_small.x[:40]
    with torch.no_grad():
        assert s.values["train_loss"][1] == pytest.approx(float(F.mse_loss(net(x), x)), rel=1e-6)


# -- batches of any structure --------------------------------------------------------------------------------------
class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(5, 4), nn.Linear(3, 4)

    def forward(self, u, v):
        return self.a(u) + self.b(v)


class DictModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.f = nn.Linear(6, 3)

    def forward(self, features, mask):
        return self.f(features * mask)


@pytest.fixture(scope="module")
def two():
    g = torch.Generator().manual_seed(7)
    return torch.randn(30, 5, generator=g), torch.randn(30, 3, generator=g), torch.randint(0, 4, (30,), generator=g)


def test_tuples_of_several_inputs(tmp_path, two):
    torch.manual_seed(5)
    net = TwoInputs().eval()
    u, v, y = two
    forms = {"nested": ((u, v), y), "flat": (u, v, y), "dataset": torch.utils.data.TensorDataset(u, v, y),
             "loader": torch.utils.data.DataLoader(torch.utils.data.TensorDataset(u, v, y), batch_size=8),
             "list": [((u[k:k + 8], v[k:k + 8]), y[k:k + 8]) for k in range(0, 30, 8)]}
    values = {}
    for name, data in forms.items():
        res = landscape.compute(net, data=data, out=str(tmp_path), name=name, **GRID)
        values[name] = read_surface(res.path).values["train_loss"]
    with torch.no_grad():
        want = float(F.cross_entropy(moved(net, res.path, 2, 0)(u, v), y))
    for name, got in values.items():
        assert got[2, 0] == pytest.approx(want, rel=1e-6), name


class DictItems(torch.utils.data.Dataset):
    def __init__(self, f, m, y):
        self.f, self.m, self.y = f, m, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"features": self.f[i], "mask": self.m[i], "labels": self.y[i]}


class DictModelWithLabels(DictModel):
    def forward(self, features, mask, labels=None):
        return super().forward(features, mask)


def test_dict_batches_as_one_dict_a_list_a_dataset_and_a_dataloader(tmp_path):
    g = torch.Generator().manual_seed(8)
    f, m, y = torch.randn(25, 6, generator=g), (torch.rand(25, 6, generator=g) > 0.3).float(), \
        torch.randint(0, 3, (25,), generator=g)
    torch.manual_seed(6)
    net = DictModelWithLabels().eval()
    whole = {"features": f, "mask": m, "labels": y}
    forms = {"dict": whole, "list": [{k: v[i:i + 10] for k, v in whole.items()} for i in range(0, 25, 10)],
             "dataset": DictItems(f, m, y), "loader": torch.utils.data.DataLoader(DictItems(f, m, y), batch_size=6)}
    for name, data in forms.items():
        res = landscape.compute(net, data=data, out=str(tmp_path), name=name, **GRID)
        s = read_surface(res.path)
        with torch.no_grad():
            out = moved(net, res.path, 0, 2)(f, m)
        assert s.values["train_loss"][0, 2] == pytest.approx(float(F.cross_entropy(out, y)), rel=1e-6), name
        assert s.values["train_acc"][0, 2] == pytest.approx(float((out.argmax(1) == y).double().mean() * 100))


def test_ragged_batches_are_a_one_line_error(tmp_path, lm):
    batches = [{"ids": torch.zeros(4, 12, dtype=torch.long)}, {"ids": torch.zeros(4, 9, dtype=torch.long)}]
    with pytest.raises(LandscapeError, match=r"batch 1 differs from batch 0 .*ids: shape \(12,\) int64 vs \(9,\) "
                                             r"int64.*pad to one length"):
        landscape.compute(lm, data=batches, out=str(tmp_path), **GRID)


def test_inputs_alone_need_an_objective_and_loss_and_objective_exclude_each_other(tmp_path, two):
    torch.manual_seed(5)
    net = nn.Linear(5, 4)
    u = two[0]
    with pytest.raises(LandscapeError, match="holds inputs only .* pass objective=fn\\(model, batch\\)"):
        landscape.compute(net, data=u, out=str(tmp_path), **GRID)
    with pytest.raises(LandscapeError, match="pass either loss= .* or objective="):
        landscape.compute(net, data=u, loss="mse", objective=reconstruction, out=str(tmp_path), **GRID)


# -- no silent wrong answers (each failed, or gave a wrong surface, before) ---------------------------------------
def test_cross_entropy_on_regression_targets_is_an_error_not_a_flat_surface(tmp_path):
    torch.manual_seed(0)
    net = nn.Linear(4, 1)
    x, y = torch.randn(20, 4), torch.randn(20, 1)
    with pytest.raises(LandscapeError, match="needs class labels .* shaped like the output .* pass loss='mse'$"):
        landscape.compute(net, data=(x, y), out=str(tmp_path), **GRID)
    res = landscape.compute(net, data=(x, y), loss="mse", out=str(tmp_path), **GRID)
    with torch.no_grad():
        want = float(F.mse_loss(moved(net, res.path, 0, 0)(x), y))
    assert read_surface(res.path).values["train_loss"][0, 0] == pytest.approx(want, rel=1e-6)


def test_cross_entropy_on_an_autoencoders_targets_is_an_error_soft_labels_still_work(tmp_path, digits_small):
    torch.manual_seed(3)
    net = AutoEncoder().eval()
    x = digits_small.x[:30]
    with pytest.raises(LandscapeError, match="pass loss='mse'"):
        landscape.compute(net, data=(x, x), out=str(tmp_path), **GRID)
    clf = nn.Linear(64, 10)
    soft = F.softmax(torch.randn(30, 10), 1)  # class probabilities (distillation): a real cross-entropy
    res = landscape.compute(clf, data=(x.flatten(1), soft), out=str(tmp_path), name="soft", **GRID)
    with torch.no_grad():
        want = float(F.cross_entropy(moved(clf, res.path, 1, 1)(x.flatten(1)), soft))
    assert read_surface(res.path).values["train_loss"][1, 1] == pytest.approx(want, rel=1e-6)


def test_a_callable_returning_per_token_losses_is_averaged_not_summed(tmp_path, lm, lm_data):
    ids, targets = lm_data
    t = targets.clamp(min=0)

    def per_token(out, y):  # (B, T): one value per token
        return F.cross_entropy(out.movedim(-1, 1), y, reduction="none")

    res = landscape.compute(lm, data=(ids, t), loss=per_token, out=str(tmp_path), **GRID)
    with torch.no_grad():
        want = float(F.cross_entropy(moved(lm, res.path, 2, 2)(ids).movedim(-1, 1), t))
    assert read_surface(res.path).values["train_loss"][2, 2] == pytest.approx(want, rel=1e-6)


class RawPixels(nn.Module):
    """A user's classifier trained on raw pixels in [0, 1] (no normalization)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_a_users_model_on_a_named_data_set_must_say_its_normalization(tmp_path):
    net = RawPixels()
    with pytest.raises(LandscapeError, match=r"records no input normalization, .* normalization='dataset' .*, "
                                             r"'none' \(raw pixels in \[0, 1\]\) or MEAN/STD"):
        landscape.compute(net, data="digits", samples=20, out=str(tmp_path), **GRID)
    res = landscape.compute(net, data="digits", samples=20, normalization="none", out=str(tmp_path), **GRID)
    raw = landscape.data.load_data("digits", samples=20, normalization="none")
    assert float(raw.x.min()) == 0.0 and float(raw.x.max()) == 1.0
    with torch.no_grad():
        want = float(F.cross_entropy(net(raw.x), raw.y))
    assert read_surface(res.path).values["train_loss"][1, 1] == pytest.approx(want, rel=1e-6)


def test_float64_models_compute_and_record_float64(tmp_path, two):
    torch.manual_seed(5)
    net = TwoInputs().double().eval()
    u, v, y = two  # float32 data: cast up, exactly
    with pytest.raises(LandscapeError, match="precision='bf16' does not apply to a model whose weights are float64"):
        landscape.compute(net, data=((u, v), y), precision="bf16", out=str(tmp_path), **GRID)
    res = landscape.compute(net, data=((u, v), y), out=str(tmp_path), **GRID)
    s = read_surface(res.path)
    assert s.attrs["precision"] == "fp64"
    with torch.no_grad():
        want = float(F.cross_entropy(moved(net, res.path, 0, 1)(u.double(), v.double()), y))
    assert s.values["train_loss"][0, 1] == pytest.approx(want, rel=1e-12)  # float64 throughout


@pytest.mark.parametrize("loss,needle,not_needle", [
    ("mse", "pass a callable loss=fn", "use loss='mse'"),
    ("cross_entropy", "(B, T) token ids, -100 where ignored", "use loss='mse'"),
])
def test_hints_fit_the_case(tmp_path, lm, loss, needle, not_needle):
    ids = torch.randint(0, 17, (6, 12))
    bad = torch.randint(0, 17, (6, 11))  # one token short
    with pytest.raises(LandscapeError) as e:
        landscape.compute(lm, data=(ids, bad if loss == "cross_entropy" else bad.float()), loss=loss,
                          out=str(tmp_path), **GRID)
    assert needle in str(e.value) and not_needle not in str(e.value)


# -- trajectories of any naming, and of modules from Python -------------------------------------------------------
def test_trajectory_snapshots_named_by_step_and_given_as_modules(tmp_path, digits_small):
    from landscape.checkpoints import save_checkpoint
    from conftest import make_model

    final = make_model("resnet20", seed=0)
    snaps = [make_model("resnet20", seed=s) for s in (1, 2, 3)]
    run = tmp_path / "run"
    for step, m in zip((100, 20, 3000), snaps):  # written out of order: the step in the name orders them
        save_checkpoint(str(run / f"step{step}.pt"), m, "resnet20")
    save_checkpoint(str(tmp_path / "final.pt"), final, "resnet20", normalization=digits_small.normalization)
    common = dict(data="digits", samples=16, render=False, progress=False, x="-1:1:3", y="-1:1:3")
    a = landscape.compute(str(tmp_path / "final.pt"), trajectory=str(run), out=str(tmp_path), name="a", **common)
    ordered = [snaps[1], snaps[0], snaps[2]]  # steps 20, 100, 3000
    b = landscape.compute(final, trajectory=ordered, normalization="dataset", out=str(tmp_path), name="b", **common)
    sa, sb = read_surface(a.path), read_surface(b.path)
    assert list(sa.trajectory["epochs"][:3]) == [20, 100, 3000]
    np.testing.assert_allclose(sa.trajectory["x"], sb.trajectory["x"], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(sa.values["train_loss"], sb.values["train_loss"], rtol=1e-6)
    (run / "epoch_ish7.pt").write_bytes(b"")
    with pytest.raises(LandscapeError, match="mixes snapshot namings"):
        landscape.compute(str(tmp_path / "final.pt"), trajectory=str(run), out=str(tmp_path), name="c", **common)


def test_the_batched_engine_gives_the_loops_values_for_token_losses_and_dict_inputs(tmp_path, lm, lm_data):
    """points_per_step > 1 (vmap over stacked weights): token-weighted sums per point, and keyword inputs."""
    ids, targets = lm_data
    loop = landscape.compute(lm, data=(ids, targets), out=str(tmp_path), name="loop", **GRID)
    vmap = landscape.compute(lm, data=(ids, targets), points_per_step=4, out=str(tmp_path), name="vmap", **GRID)
    a, b = read_surface(loop.path), read_surface(vmap.path)
    np.testing.assert_allclose(b.values["train_loss"], a.values["train_loss"], rtol=1e-6)
    np.testing.assert_array_equal(b.values["train_acc"], a.values["train_acc"])
    g = torch.Generator().manual_seed(8)
    data = {"features": torch.randn(25, 6, generator=g), "mask": torch.ones(25, 6),
            "labels": torch.randint(0, 3, (25,), generator=g)}
    torch.manual_seed(6)
    net = DictModelWithLabels().eval()
    loop = landscape.compute(net, data=data, out=str(tmp_path), name="dloop", **GRID)
    vmap = landscape.compute(net, data=data, points_per_step=3, out=str(tmp_path), name="dvmap", **GRID)
    np.testing.assert_allclose(read_surface(vmap.path).values["train_loss"],
                               read_surface(loop.path).values["train_loss"], rtol=1e-6)
    with pytest.raises(LandscapeError, match="--points-per-step 2 is the batched \\(vmap\\) engine"):
        landscape.compute(pinn(), data=torch.rand(8, 2), objective=laplace_residual, points_per_step=2,
                          out=str(tmp_path), name="p", **GRID)
