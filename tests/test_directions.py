import h5py
import pytest
import torch

from conftest import make_model
from landscape.directions import (load_directions, make_directions, perturbed_tensors, random_direction,
                                  target_direction)
from landscape.errors import LandscapeError


def test_filter_normalized_direction_has_the_weights_filter_norms():
    m = make_model()
    d = random_direction(m, norm="filter", generator=torch.Generator().manual_seed(0))
    for (name, w), di in zip(m.named_parameters(), d):
        if w.dim() <= 1:
            assert torch.count_nonzero(di) == 0, name  # biasbn ignored
            continue
        wn = w.detach().reshape(w.shape[0], -1).norm(dim=1)
        dn = di.reshape(di.shape[0], -1).norm(dim=1)
        torch.testing.assert_close(dn, wn, rtol=1e-5, atol=0)


def test_ignore_none_copies_biases_and_bn():
    m = make_model()
    d = random_direction(m, ignore="none", generator=torch.Generator().manual_seed(0))
    for w, di in zip(m.parameters(), d):
        if w.dim() <= 1:
            assert torch.equal(di, w.detach())


def test_layer_and_weight_norms():
    m = make_model()
    w = m.conv1.weight.detach()
    d = random_direction(m, norm="layer", generator=torch.Generator().manual_seed(0))[0]
    assert abs(float(d.norm() - w.norm())) < 1e-4 * float(w.norm())
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    dw = random_direction(m, norm="weight", generator=g1)[0]
    raw = torch.randn(w.shape, generator=g2)
    torch.testing.assert_close(dw, raw * w, rtol=0, atol=0)


def test_same_seed_same_directions_different_seed_different():
    m = make_model()
    x1, y1 = make_directions(m, seed=7)
    x2, y2 = make_directions(m, seed=7)
    x3, _ = make_directions(m, seed=8)
    assert all(torch.equal(a, b) for a, b in zip(x1 + y1, x2 + y2))
    assert not torch.equal(x1[0], x3[0]) and not torch.equal(x1[0], y1[0])


def test_states_directions_cover_bn_buffers():
    m = make_model()
    names, tensors = perturbed_tensors(m, "states")
    assert "bn1.running_mean" in names and "bn1.num_batches_tracked" in names
    d = random_direction(m, "states", ignore="none", generator=torch.Generator().manual_seed(0))
    i = names.index("bn1.running_var")
    assert torch.equal(d[i], m.bn1.running_var)
    assert torch.count_nonzero(d[names.index("bn1.num_batches_tracked")]) == 0


def test_target_direction_is_the_difference():
    a, b = make_model(seed=0), make_model(seed=1)
    d = target_direction(a, b)
    for wa, wb, di in zip(a.parameters(), b.parameters(), d):
        assert torch.equal(di, wb.detach() - wa.detach())
    with pytest.raises(LandscapeError, match="same architecture"):
        target_direction(a, make_model("resnet32"))


def test_reference_direction_file_imports(tmp_path):
    """The reference writes groups xdirection/ydirection with datasets '0'..'N-1' in parameters() order."""
    m = make_model()
    x, y = make_directions(m, seed=3)
    p = tmp_path / "ref_dirs.h5"
    with h5py.File(p, "w") as f:
        for name, d in (("xdirection", x), ("ydirection", y)):
            g = f.create_group(name)
            for i, t in enumerate(d):
                g.create_dataset(str(i), data=t.numpy())
    xi, yi = load_directions(str(p), m)
    assert all(torch.equal(a, b) for a, b in zip(x + y, xi + yi))
    with pytest.raises(LandscapeError, match="tensors but the model has"):
        load_directions(str(p), make_model("resnet32"))


def test_pca_directions_are_orthonormal_and_explain_their_variance():
    from landscape.directions import pca_directions

    final = make_model(seed=0)
    snaps = [make_model(seed=s) for s in range(1, 7)]
    x, y, ratio, path = pca_directions(final, snaps)
    vx = torch.cat([t.reshape(-1) for t in x]).double()
    vy = torch.cat([t.reshape(-1) for t in y]).double()
    assert abs(float(vx.norm()) - 1) < 1e-6 and abs(float(vy.norm()) - 1) < 1e-6 and abs(float(vx @ vy)) < 1e-6
    for (name, w), dx in zip(final.named_parameters(), x):
        if w.dim() <= 1:
            assert torch.count_nonzero(dx) == 0, name  # biasbn ignored
    # the reported ratios are the variance of the centred projections over the total variance
    diffs = torch.stack([torch.cat([(a.detach().double() - b.detach().double()).reshape(-1) * (b.dim() > 1)
                                    for a, b in zip(s.parameters(), final.parameters())]) for s in snaps])
    diffs = torch.cat([diffs, torch.zeros_like(diffs[:1])])  # the final model is a row too (the reference's)
    assert len(path) == 7 and path[-1] == (0.0, 0.0)
    centred = diffs - diffs.mean(0)
    total = float((centred ** 2).sum())
    assert ratio[0] == pytest.approx(float(((centred @ vx) ** 2).sum()) / total, rel=1e-6)
    assert ratio[1] == pytest.approx(float(((centred @ vy) ** 2).sum()) / total, rel=1e-6)
    assert ratio[0] >= ratio[1] > 0 and sum(ratio) <= 1 + 1e-9
    assert path[2] == pytest.approx((float(diffs[2] @ vx), float(diffs[2] @ vy)), rel=1e-6)
    with pytest.raises(LandscapeError, match="at least 2 snapshots"):
        pca_directions(final, snaps[:1])


def test_pca_matches_the_reference_when_the_final_model_is_not_a_snapshot():
    """The reference (projection.setup_PCA_directions) fits sklearn's PCA on the differences of every model file
    from the final model, the final model's own (zero) row included, and projects each difference on the unit
    directions (project_trajectory)."""
    from sklearn.decomposition import PCA

    from landscape.directions import pca_directions

    final = make_model(seed=0)
    snaps = [make_model(seed=s) for s in range(1, 6)]
    x, y, ratio, path = pca_directions(final, snaps)
    rows = [torch.cat([(a.detach().double() - b.detach().double()).reshape(-1) * (b.dim() > 1)
                       for a, b in zip(m.parameters(), final.parameters())]) for m in snaps + [final]]
    ref = PCA(n_components=2).fit(torch.stack(rows).numpy())
    ours = [torch.cat([t.reshape(-1) for t in d]).double() for d in (x, y)]
    for i in range(2):
        pc = torch.from_numpy(ref.components_[i])
        cos = float(ours[i] @ pc / (ours[i].norm() * pc.norm()))
        assert abs(cos) > 1 - 1e-6
        assert ratio[i] == pytest.approx(float(ref.explained_variance_ratio_[i]), rel=1e-6)
        sign = 1.0 if cos > 0 else -1.0
        ref_path = [float(r @ pc) / float(pc.norm()) for r in rows]
        assert [p[i] for p in path] == pytest.approx([sign * v for v in ref_path], abs=1e-4)
    # a snapshot equal to the final model is not counted twice
    assert len(pca_directions(final, snaps + [final])[3]) == 6


def test_num_batches_tracked_moves_nothing_in_eval_mode():
    """--dir-type states --ignore none: the reference copies the integer num_batches_tracked counters into the
    direction; ours keeps them at zero. The counter only sets the running-average momentum in training, so in
    eval mode (how every point is evaluated) both give the same outputs."""
    m = make_model().eval()
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        before = m(x)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.num_batches_tracked += 12345
        assert torch.equal(m(x), before)
