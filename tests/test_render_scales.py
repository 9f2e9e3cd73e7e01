"""Honest scales: values beyond a colour bar's range are marked (a triangle, a "≥ cap" label, the true maximum),
a surface mostly above the linear cap is drawn on a log scale and the command says so, and an interpolation between
two models names its ends."""

import os

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import landscape.render.curve as curve  # noqa: E402
from landscape.render import render_surface  # noqa: E402
from landscape.render.scale import fmt_value, make_scale  # noqa: E402
from landscape.render.static import figure_2d  # noqa: E402
from landscape.surface import read_surface  # noqa: E402


def _surface(path, loss, x=None, y=None, **attrs):
    n = loss.shape[-1]
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = np.linspace(-1, 1, n) if x is None else x
        if loss.ndim == 2:
            f["ycoordinates"] = np.linspace(-1, 1, loss.shape[0]) if y is None else y
        f["train_loss"], f["train_done"] = loss, np.ones_like(loss, dtype=bool)
        f["train_acc"] = np.clip(100 - 10 * loss, 10, 100)
        f.attrs.update({"format_version": 1, "arch": "resnet56", "split": "train", **attrs})
    return read_surface(str(path))


def _blowup(n=21, top=1.3e14):
    """A basin at 0.01 whose walls climb to ``top`` within the grid: most of a ±3 plane lies far above 10."""
    x = np.linspace(-3, 3, n)
    xx, yy = np.meshgrid(x, x)
    return 0.01 * (top / 0.01) ** (np.sqrt(xx ** 2 + yy ** 2) / np.sqrt(18))


def test_a_colour_bar_marks_values_above_its_range_and_states_the_maximum(tmp_path):
    loss = _blowup()
    s = _surface(tmp_path / "b.h5", loss)
    scale = make_scale([loss], log=False)
    assert scale.vmax == pytest.approx(10.01) and scale.data_max == pytest.approx(1.3e14) and scale.extend == "max"
    ticks, labels = scale.bar_ticks()
    assert ticks[-1] == scale.vmax and labels[-1] == "≥ 10"
    assert all(not lab.startswith("≥") for lab in labels[:-1])
    for kind in ("contourf", "heatmap"):
        fig = figure_2d(s, "train_loss", kind, scale)
        cb = fig.axes[-1]
        fig.canvas.draw()
        shown = [t.get_text() for t in cb.get_yticklabels()]
        assert shown[-1] == "≥ 10" and cb.get_ylabel() == "train loss (max 1.3e+14)"
        assert fig.axes[0].collections and getattr(cb, "_colorbar").extend == "max"
        plt.close(fig)
    inside = make_scale([np.clip(loss, None, 5.0)], log=False)  # nothing beyond: no mark, no maximum
    assert inside.extend == "neither" and inside.bar_label("train loss") == "train loss"
    assert not any(lab.startswith("≥") for lab in inside.bar_ticks()[1])
    under = make_scale([loss], vmin=0.1, vmax=1.0)
    assert under.extend == "both" and under.bar_ticks()[1][0] == "≤ 0.1" and under.bar_ticks()[1][-1] == "≥ 1"


def test_a_surface_mostly_above_the_linear_cap_is_drawn_on_a_log_scale_and_says_so(tmp_path, monkeypatch):
    s = _surface(tmp_path / "b.h5", _blowup())
    import landscape.render.static as static

    seen = []
    real = static.draw_2d
    monkeypatch.setattr(static, "draw_2d", lambda ax, s, key, kind, scale, labels=True: (
        seen.append(scale), real(ax, s, key, kind, scale, labels))[1])
    notes = []
    render_surface(s.path, str(tmp_path), ["png"], notes=notes)
    assert seen and all(sc.log and sc.geometric for sc in seen)
    assert notes == [f"{s.path}: over three quarters of the values lie above the linear scale's cap (max(10*min, "
                     "min+10)): drawn on a log scale (--no-log for a linear one)"]
    seen.clear()
    notes.clear()
    render_surface(s.path, str(tmp_path), ["png"], log=False, notes=notes)  # --no-log: as asked
    assert seen and not any(sc.log for sc in seen) and notes == []
    half = np.where(np.arange(21 * 21).reshape(21, 21) % 2 == 0, _blowup(), 0.5)  # half above: linear as before
    s2 = _surface(tmp_path / "c.h5", half)
    seen.clear()
    render_surface(s2.path, str(tmp_path), ["png"], notes=notes)
    assert seen and not any(sc.log for sc in seen) and notes == []


def test_an_interpolation_names_its_ends_and_says_how_it_is_drawn(tmp_path, monkeypatch):
    loss = np.array([0.01, 0.5, 2.0, 0.6, 0.02])
    s = _surface(tmp_path / "i.h5", loss, x=np.linspace(-0.5, 1.5, 5), ckpt="runs/r20_s1/final.pt",
                 directions="target:r20_s2/final.pt")
    figs = []
    monkeypatch.setattr(curve, "save", lambda fig, base, formats: figs.append(fig) or [])
    curve.render_1d(s, str(tmp_path / "i"), ["png"])
    ax = figs[0].axes[0]
    texts = {t.get_text(): t for t in ax.texts}
    assert set(texts) == {"A: r20_s1/final", "B: r20_s2/final"}
    assert [t.xy[0] for t in sorted(texts.values(), key=lambda t: t.get_text())] == [0.0, 1.0]
    assert ax.get_title() == "resnet56: A \u2192 B · loss / accuracy"
    assert "0: A, 1: B" in ax.get_xlabel()
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--" and len(set(ln.get_xdata())) == 1]
    assert sorted(ln.get_xdata()[0] for ln in dashed) == [0.0, 1.0]
    plt.close(figs[0])
    figs.clear()
    random = _surface(tmp_path / "r.h5", loss, x=np.linspace(-0.5, 1.5, 5), directions="random")
    curve.render_1d(random, str(tmp_path / "r"), ["png"])
    # a random direction: no ends to name, theta* named at alpha = 0 (tests/test_render_curves.py)
    assert [t.get_text() for t in figs[0].axes[0].texts] == ["θ*"]
    assert figs[0].axes[0].get_xlabel() == r"$\alpha$  ($\theta = \theta^* + \alpha\,\delta$)"
    plt.close(figs[0])


def test_shared_scale_draws_train_and_test_and_several_files_on_one_scale(tmp_path, monkeypatch):
    import landscape.render.static as static
    from landscape.render import render_shared
    from landscape.render.__main__ import main as render_main

    x = np.linspace(-1, 1, 9)
    xx, yy = np.meshgrid(x, x)
    train = 0.02 + 2 * (xx ** 2 + yy ** 2)
    p = tmp_path / "tt.h5"
    _surface(p, train)
    with h5py.File(p, "r+") as f:
        f["test_loss"], f["test_done"] = 3 * train + 0.5, np.ones_like(train, dtype=bool)
    other = tmp_path / "other.h5"
    _surface(other, train + 1.0)
    with h5py.File(other, "r+") as f:
        f["test_loss"], f["test_done"] = train + 1.0, np.ones_like(train, dtype=bool)
    seen = []
    real = static.draw_2d
    monkeypatch.setattr(static, "draw_2d", lambda ax, s, key, kind, scale, labels=True: (
        seen.append((key, scale.vmin, scale.vmax, tuple(scale.levels))), real(ax, s, key, kind, scale, labels))[1])
    notes = []
    written = render_shared([str(p), str(other)], str(tmp_path / "o"), ["png"], ["train_loss", "test_loss"],
                            notes=notes)
    assert {os.path.basename(w) for w in written} >= {"tt_train_loss_contourf.png", "tt_test_loss_contourf.png",
                                                       "other_train_loss_contourf.png"}
    assert len({v[1:] for v in seen}) == 1 and {v[0] for v in seen} == {"train_loss", "test_loss"}
    lo, hi = seen[0][1], seen[0][2]
    assert lo == pytest.approx(0.02) and hi == pytest.approx(np.percentile(np.concatenate(
        [train.ravel(), (3 * train + 0.5).ravel(), (train + 1).ravel(), (train + 1).ravel()]), 95))
    assert notes[-1] == f"--shared-scale: 4 surfaces on one scale, 0.02 to {hi:.3g}"
    seen.clear()  # each on its own scale without it
    render_surface(str(p), str(tmp_path / "o2"), ["png"], surface="test_loss")
    assert [round(v[1], 9) for v in seen] == [0.56] * len(seen) and seen
    assert render_main([str(p), "--shared-scale", "--surface", "train_loss,test_loss", "--formats", "png", "--out",
                        str(tmp_path / "cli")]) == 0
    assert sorted(os.listdir(tmp_path / "cli"))[:2] == ["tt_test_loss_contour.png", "tt_test_loss_contourf.png"]


def test_a_train_test_surface_draws_both_splits_on_one_scale(tmp_path, monkeypatch):
    """A run of ``--split train,test`` drew the train loss only, and said nothing of the test one: both are drawn,
    each on its own figures, on one colour scale (named ``<name>_train_loss_*``, ``<name>_test_loss_*``); a
    ``surface=`` still draws one alone."""
    import landscape.render.static as static

    x = np.linspace(-1, 1, 9)
    xx, yy = np.meshgrid(x, x)
    train = 0.02 + 2 * (xx ** 2 + yy ** 2)
    p = tmp_path / "tt.h5"
    _surface(p, train, split="train,test")
    with h5py.File(p, "r+") as f:
        f["test_loss"], f["test_done"] = 3 * train + 0.5, np.ones_like(train, dtype=bool)
    seen = []
    real = static.draw_2d
    monkeypatch.setattr(static, "draw_2d", lambda ax, s, key, kind, scale, labels=True: (
        seen.append((key, scale.vmin, scale.vmax)), real(ax, s, key, kind, scale, labels))[1])
    import landscape.render as R

    reads = []
    real_read = R.read_surface
    monkeypatch.setattr(R, "read_surface", lambda *a, **k: reads.append(a[0]) or real_read(*a, **k))
    written = render_surface(str(p), str(tmp_path / "o"), ["png", "html"], name="run")
    assert reads == [str(p)]  # the file is read once for both splits' figures
    assert sorted(os.path.basename(w) for w in written if w.endswith((".html", "contourf.png"))) == [
        "run_test_loss.html", "run_test_loss_contourf.png", "run_train_loss.html", "run_train_loss_contourf.png"]
    assert {k for k, _, _ in seen} == {"train_loss", "test_loss"} and len({v[1:] for v in seen}) == 1
    assert seen[0][1] == pytest.approx(0.02)  # the train loss's floor: the test figures on the same scale
    # each figure states its own maximum (not the other split's), and the 3D views share one camera
    from landscape.render.html import figure_json

    pages = {k: figure_json(str(tmp_path / "o" / f"run_{k}.html")) for k in ("train_loss", "test_loss")}
    vmax = seen[0][2]
    assert train.max() < vmax < (3 * train + 0.5).max()  # the train loss lies within the shared range, test not
    bars = {k: next(tr for tr in pages[k][0] if tr["type"] == "heatmap")["colorbar"] for k in pages}
    assert bars["train_loss"]["title"]["text"] == "train loss" and "≥" not in bars["train_loss"]["ticktext"][-1]
    assert bars["test_loss"]["title"]["text"] == f"test loss (max {fmt_value((3 * train + 0.5).max())})"
    assert bars["test_loss"]["ticktext"][-1] == f"≥ {fmt_value(vmax)}"
    cams = [pages[k][1]["scene"]["camera"]["eye"] for k in pages]
    assert cams[0] == pytest.approx(cams[1])
    seen.clear()
    render_surface(str(p), str(tmp_path / "o3"), ["png"], surface="test_loss")
    assert {k for k, _, _ in seen} == {"test_loss"} and seen[0][1] == pytest.approx(0.56)


def test_eigen_maps_label_their_colour_bars_and_say_how_many_samples(tmp_path, monkeypatch):
    import landscape.render.static as static
    from landscape.render.eigen import render_eigen

    x = np.linspace(-1, 1, 5)
    xx, yy = np.meshgrid(x, x)
    s = _surface(tmp_path / "e.h5", 0.1 + xx ** 2 + yy ** 2, n_samples=512)
    s.values["max_eig"], s.values["min_eig"] = 10 + xx, -(yy ** 2)
    figs = []
    monkeypatch.setattr(static, "save", lambda fig, base, formats, **kw: figs.append(fig) or [])
    render_eigen(s, str(tmp_path / "e"), ["png"])
    fig = figs[0]
    assert fig._suptitle.get_text() == "resnet56: Hessian eigenvalue ratio on 512 samples (largest |ratio| 0.11)"
    bars = [ax.get_ylabel() for ax in fig.axes[2:]]
    assert bars == ["|λmin / λmax|", "λmin / λmax"]
    plt.close(fig)


def test_planes_keep_their_aspect_labels_clear_of_theta_star_black_contour_labels_and_no_seams(tmp_path):
    x, y = np.linspace(-2, 2, 21), np.linspace(-1, 1, 11)  # a 2:1 plane
    xx, yy = np.meshgrid(x, y)
    s = _surface(tmp_path / "w.h5", 0.05 + xx ** 2 + 3 * yy ** 2, x=x, y=y)
    scale = make_scale([s.values["train_loss"]])
    for kind in ("contour", "contourf", "heatmap"):
        fig = figure_2d(s, "train_loss", kind, scale)
        ax = fig.axes[0]
        fig.canvas.draw()
        box = ax.get_window_extent()
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        assert (x1 - x0) / (y1 - y0) == pytest.approx(2.0, rel=0.1)  # the 2:1 plane, as drawn
        assert box.width / box.height == pytest.approx((x1 - x0) / (y1 - y0), rel=0.01)  # one unit, both axes
        m = ax.collections[0]
        if kind == "contour":
            labels = [t for t in ax.texts if t.get_text()]
            assert labels and all(t.get_color() in ("black", "k", (0, 0, 0, 1)) for t in labels)
        else:  # edged in their own colour: no hairline seams in PDF/SVG
            assert m.get_edgecolor().shape[0] in (0, 1) or np.allclose(m.get_edgecolor(), m.get_facecolor())
            assert m.get_linewidth()[0] == pytest.approx(0.2)
        plt.close(fig)
    # (epoch labels clear of theta* and of each other: tests/test_render_trajectory.py)



def test_pages_mark_values_above_the_range_and_name_pca_axes(tmp_path):
    from landscape.render.html import figure_json

    p = tmp_path / "b.h5"
    _surface(p, _blowup())
    with h5py.File(p, "r+") as f:
        g = f.create_group("trajectory")
        g["x"], g["y"], g["epochs"] = np.array([-2.0, -1.0, 0.0]), np.array([1.0, 0.5, 0.0]), np.array([0, 5, 10])
        g.attrs["explained_variance_ratio"] = np.array([0.612, 0.204])
    render_surface(str(p), str(tmp_path), ["html"], log=False)
    data, layout = figure_json(str(tmp_path / "b.html"))
    heat = next(t for t in data if t["type"] == "heatmap")
    mesh = next(t for t in data if t["type"] == "mesh3d")
    for bar in (heat["colorbar"], mesh["colorbar"]):
        assert bar["ticktext"][-1] == "≥ 10" and bar["title"]["text"] == "train loss (max 1.3e+14)"
    assert layout["xaxis"]["title"]["text"] == "1st PCA component: 61.2 %"
    assert layout["yaxis"]["title"]["text"] == "2nd PCA component: 20.4 %"


def test_the_eigen_page_labels_its_colour_bars_and_says_how_many_samples(tmp_path):
    from landscape.render.eigen import render_html_eigen
    from landscape.render.html import figure_json

    x = np.linspace(-1, 1, 5)
    xx, yy = np.meshgrid(x, x)
    s = _surface(tmp_path / "e.h5", 0.1 + xx ** 2 + yy ** 2, n_samples=512)
    s.values["max_eig"], s.values["min_eig"] = 10 + xx, -(yy ** 2)
    page = render_html_eigen(s, "train_loss", str(tmp_path / "e_eigen.html"))
    data, _ = figure_json(page)
    assert [t["colorbar"]["title"]["text"] for t in data if t["type"] == "heatmap"] == ["|λmin / λmax|",
                                                                                      "λmin / λmax"]
    assert "Hessian eigenvalue ratio on 512 samples" in open(page, encoding="utf-8").read()


def test_a_page_leaves_off_the_random_directions_settings_when_no_direction_is_random(tmp_path):
    """An interpolation (1D, towards --ckpt2) or a plane through three models draws no random direction: its page
    does not list norm, ignore and seed (meaningless there); a 2D plane with one target and one random direction
    keeps them."""
    from landscape.render.html import _settings_items

    common = dict(norm="filter", ignore="biasbn", seed=123)
    one = _surface(tmp_path / "i.h5", np.array([0.1, 0.2, 0.3]), directions="target:r20_s2/final.pt", **common)
    assert {"norm", "ignore", "seed"}.isdisjoint(k for k, _ in _settings_items(one))
    loss = np.ones((3, 3))
    both = _surface(tmp_path / "p.h5", loss, directions="target:r20_s2/final.pt | r20_s3/final.pt", **common)
    assert {"norm", "ignore", "seed"}.isdisjoint(k for k, _ in _settings_items(both))
    half = _surface(tmp_path / "h.h5", loss, directions="target:r20_s2/final.pt", **common)
    assert {"norm", "ignore", "seed"} <= {k for k, _ in _settings_items(half)}


def test_one_colour_bar_for_several_panels_states_each_ones_maximum(tmp_path):
    """--compare and --figure paper have one colour bar beside every panel: its title gave the largest maximum
    as if it were each one's; it states each panel's, in their order."""
    from landscape.render import render_comparison
    from landscape.render.html import figure_json

    a, b = _blowup(15, top=8000.0), _blowup(15, top=2.7e7)
    _surface(tmp_path / "a.h5", a)
    _surface(tmp_path / "b.h5", b, arch="plain56")
    written = render_comparison([str(tmp_path / "a.h5"), str(tmp_path / "b.h5")], str(tmp_path), ["html"])
    traces, _ = figure_json(written[0])
    titles = {t["colorbar"]["title"]["text"] for t in traces if t.get("showscale") and t.get("colorbar")}
    assert titles == {f"train loss (max {fmt_value(a.max())} / {fmt_value(b.max())})"}
    scale = make_scale([a, b])
    assert scale.bar_label("train loss") == f"train loss (max {fmt_value(b.max())})"  # one surface's bar: its own


def test_every_kind_of_2d_figure_has_the_same_alpha_beta_ticks(tmp_path):
    """A heatmap's axes reach half a cell past the grid: its ticks came out -1, 0, 1 beside contour figures with
    steps of 0.5. The ticks are chosen on the grid's extent for every kind."""
    x = np.linspace(-1, 1, 21)
    xx, yy = np.meshgrid(x, x)
    s = _surface(tmp_path / "g.h5", 0.05 + xx ** 2 + yy ** 2)
    scale = make_scale([s.values["train_loss"]])
    got = {}
    for kind in ("contour", "contourf", "heatmap"):
        fig = figure_2d(s, "train_loss", kind, scale)
        fig.canvas.draw()
        ax = fig.axes[0]
        got[kind] = ([t.get_text() for t in ax.get_xticklabels()], [t.get_text() for t in ax.get_yticklabels()])
        plt.close(fig)
    want = ["\u22121", "\u22120.5", "0", "0.5", "1"]
    assert got == {k: (want, want) for k in got}
