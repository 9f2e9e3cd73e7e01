"""The 1D figures, PNG and page alike, read back as drawn: θ* named at α = 0; an interpolation's ends A and B marked
and named above the plot (where no curve passes), its title and α axis saying A → B; diverged points marked
'×' ("diverged"); the accuracy axis with head-room above 100 %; on the page, no tick label on another."""

import json
import re
import subprocess

import h5py
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from landscape.render import render_surface  # noqa: E402
from landscape.render.curve import diverged, marks, render_1d  # noqa: E402
from landscape.render.html import figure_json  # noqa: E402
from landscape.surface import read_surface  # noqa: E402

X_INTERP = np.round(np.linspace(-0.5, 1.5, 21), 10)


def _interp(path, bad=(0, 1, 20), undone=()):
    """An interpolation A -> B (as --ckpt2 writes it): two basins at 0 and 1, a wall beyond B that shoots up
    (through where B's name stood inside the axes), diverged (inf/NaN) losses at ``bad``, accuracy of 100 % at
    both ends and 10 % where the loss diverged."""
    x = X_INTERP
    loss = 0.01 + 6 * np.sin(np.pi * x) ** 2 + 800 * np.clip(x - 1, 0, None) ** 2
    acc = np.clip(100 - 30 * loss, 10, 100)
    done = np.ones_like(x, dtype=bool)
    for k, i in enumerate(bad):
        loss[i] = np.inf if k % 2 else np.nan
        acc[i] = 10.0
    for i in undone:  # never computed: NaN, not done, not diverged
        loss[i], acc[i], done[i] = np.nan, np.nan, False
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = x
        f["train_loss"], f["train_acc"], f["train_done"] = loss, acc, done
        f.attrs["format_version"], f.attrs["arch"], f.attrs["split"] = 1, "resnet20", "train"
        f.attrs["dataset"], f.attrs["ckpt"] = "digits", "runs/r20_s1/final.pt"
        f.attrs["directions"], f.attrs["dir_type"] = "target:runs/r20_s2/final.pt", "states"
    return x, loss


def _random(path, n=41):
    """A random direction through θ*: loss and accuracy (100 % at the bottom), no divergence."""
    x = np.linspace(-1, 1, n)
    loss = 0.01 + 300 * x ** 6
    with h5py.File(path, "w") as f:
        f["xcoordinates"] = x
        f["train_loss"], f["train_acc"] = loss, np.clip(100 - 40 * x ** 2, 10, 100)
        f["train_done"] = np.ones_like(x, dtype=bool)
        f.attrs["format_version"], f.attrs["arch"], f.attrs["split"] = 1, "resnet56", "train"
        f.attrs["directions"] = "random"
    return x, loss


def _png(path, tmp_path, monkeypatch):
    figs = []
    monkeypatch.setattr("landscape.render.curve.save", lambda fig, base, formats: figs.append(fig) or [base])
    render_1d(read_surface(path), str(tmp_path / "c"), ["png"])
    fig = figs[0]
    fig.canvas.draw()
    return fig


def _vlines(ax):
    """The α of each dashed vertical line drawn across the axes."""
    return sorted(float(ln.get_xdata()[0]) for ln in ax.lines
                  if ln.get_linestyle() == "--" and len(set(np.atleast_1d(ln.get_xdata()))) == 1)


def _boxes_apart(a, b, pad=0.5):
    return not (a.x0 < b.x1 - pad and b.x0 < a.x1 - pad and a.y0 < b.y1 - pad and b.y0 < a.y1 - pad)


def test_interpolation_png_names_its_ends_above_the_axes(tmp_path, monkeypatch):
    p = str(tmp_path / "interp.h5")
    _interp(p)
    fig = _png(p, tmp_path, monkeypatch)
    ax, ax2 = fig.axes
    r = fig.canvas.get_renderer()
    names = {t.get_text(): t for t in ax.texts if t.get_text()[:2] in ("A:", "B:")}
    assert set(names) == {"A: r20_s1/final", "B: r20_s2/final"}
    assert names["A: r20_s1/final"].xy[0] == 0 and names["B: r20_s2/final"].xy[0] == 1
    assert _vlines(ax) == [0.0, 1.0]
    frame = ax.get_window_extent(r)
    title = ax.title.get_window_extent(r)
    boxes = [t.get_window_extent(r) for t in names.values()]
    for b in boxes:
        # above the axes, where the (clipped) curves never go, and below the title
        assert b.y0 >= frame.y1 - 0.5 and b.y1 <= title.y0 + 0.5, (b, frame, title)
    assert _boxes_apart(*boxes)
    assert "A → B" in ax.get_title() and "0: A, 1: B" in ax.get_xlabel()


def test_interpolation_png_marks_diverged_points_and_pads_the_accuracy_axis(tmp_path, monkeypatch):
    p = str(tmp_path / "interp.h5")
    x, loss = _interp(p)
    fig = _png(p, tmp_path, monkeypatch)
    ax, ax2 = fig.axes
    crosses = [ln for ln in ax.lines if ln.get_label() == "diverged"]
    assert len(crosses) == 1
    c = crosses[0]
    assert c.get_marker() == "x" and c.get_linestyle() == "None"  # markers, no line through them
    np.testing.assert_allclose(c.get_xdata(), [-0.5, -0.4, 1.5])
    assert list(c.get_ydata()) == [1.0, 1.0, 1.0]  # on the top edge (axes fraction)
    assert c.get_transform() == ax.get_xaxis_transform()
    loss_line = next(ln for ln in ax.lines if ln.get_label() == "train loss")
    assert np.isnan(np.asarray(loss_line.get_ydata(), float)[[0, 1, 20]]).all()  # a gap in the loss line
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["train loss", "train accuracy", "diverged"]
    bottom, top = ax2.get_ylim()
    assert bottom == 0 and top > 100  # a 100 % peak below the top frame
    assert [t.get_text() for t in ax2.get_yticklabels() if t.get_text()][-1] == "100"
    # the note on the cut axis stays below the legend
    r = fig.canvas.get_renderer()
    note = next(t for t in ax.texts if "cut at" in t.get_text())
    assert note.get_window_extent(r).y1 <= ax.get_legend().get_window_extent(r).y0 + 0.5


def test_not_computed_points_are_not_diverged(tmp_path):
    p = str(tmp_path / "interp.h5")
    _interp(p, bad=(0,), undone=(5, 6))
    assert list(np.flatnonzero(diverged(read_surface(p)))) == [0]


def test_random_direction_png_names_theta_star(tmp_path, monkeypatch):
    p = str(tmp_path / "c.h5")
    _random(p)
    fig = _png(p, tmp_path, monkeypatch)
    ax, ax2 = fig.axes
    r = fig.canvas.get_renderer()
    star = [t for t in ax.texts if t.get_text() == "θ*"]
    assert len(star) == 1 and star[0].xy[0] == 0
    assert star[0].get_window_extent(r).y0 >= ax.get_window_extent(r).y1 - 0.5
    assert _vlines(ax) == [0.0]
    assert "diverged" not in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax2.get_ylim()[1] > 100 and "→" not in ax.get_title()


def test_marks_keep_apart_on_a_wide_range(tmp_path):
    """α from -10 to 1: A and B near the right end would both be turned inward; B's name goes a row up."""
    p = str(tmp_path / "interp.h5")
    _interp(p)
    with h5py.File(p, "a") as f:
        del f["xcoordinates"]
        f["xcoordinates"] = np.linspace(-10, 1, 21)
    got = marks(read_surface(p))
    assert [(a, side, row) for a, _, side, row in got] == [(0.0, "right", 0), (1.0, "right", 1)]
    assert [t for _, t, _, _ in got] == ["A: r20_s1/final", "B: r20_s2/final"]


def _annotations(layout):
    return {a["text"]: a for a in layout.get("annotations", [])}


def _shapes(layout):
    return sorted(s["x0"] for s in layout.get("shapes", []) if s.get("type") == "line" and s["x0"] == s["x1"])


def test_interpolation_page_matches_its_png(tmp_path):
    p = str(tmp_path / "interp.h5")
    x, loss = _interp(p)
    render_surface(p, str(tmp_path), "html")
    page = str(tmp_path / "interp.html")
    data, layout = figure_json(page)
    ann = _annotations(layout)
    for letter, name, a in (("A", "r20_s1/final", 0), ("B", "r20_s2/final", 1)):
        note = ann[f"{letter}: {name}"]
        # above the plot (its own domain, so a narrow window's re-laid plot keeps it)
        assert note["x"] == a and note["xref"] == "x" and note["yref"] == "y domain" and note["y"] == 1
        assert note["yanchor"] == "bottom"
    assert _shapes(layout) == [0, 1]
    assert "0: A, 1: B" in layout["xaxis"]["title"]["text"]
    text = open(page, encoding="utf-8").read()
    assert re.search(r"<h1>resnet20: A → B — 1D", text)
    # diverged points: markers on the top edge of a hidden 0..1 axis, named in the legend, no line
    cross = [t for t in data if t.get("name") == "diverged"]
    assert len(cross) == 1 and cross[0]["mode"] == "markers" and cross[0]["yaxis"] == "y3"
    assert cross[0]["x"] == pytest.approx([-0.5, -0.4, 1.5]) and cross[0]["y"] == [1.0, 1.0, 1.0]
    assert layout["yaxis3"]["range"] == [0, 1] and layout["yaxis3"]["visible"] is False
    assert [t["name"] for t in data] == ["train loss", "train accuracy", "diverged"]
    loss_trace = data[0]
    assert [loss_trace["y"][i] for i in (0, 1, 20)] == [None, None, None]
    # the accuracy axis: head-room above 100 %, ticks to 100
    assert layout["yaxis2"]["range"][1] > 100 and layout["yaxis2"]["tickvals"][-1] == 100
    # the range buttons sit above the names of the ends
    assert layout["updatemenus"][0]["pad"]["b"] >= 18


def test_random_direction_page_names_theta_star(tmp_path):
    p = str(tmp_path / "c.h5")
    x, _ = _random(p)
    render_surface(p, str(tmp_path), "html")
    data, layout = figure_json(str(tmp_path / "c.html"))
    note = _annotations(layout)["θ*"]
    assert note["x"] == 0 and note["yref"] == "y domain" and note["yanchor"] == "bottom"
    assert _shapes(layout) == [0]
    assert [t["name"] for t in data] == ["train loss", "train accuracy"]  # nothing diverged
    # the α axis a little beyond the ends: its end tick labels clear of the y axes' "0" at the corners
    lo, hi = layout["xaxis"]["range"]
    assert lo < x[0] and hi > x[-1] and (hi - x[-1]) < 0.1 * (x[-1] - x[0])


# In a real browser: every piece of text Plotly drew, with its box and class (CSS pixels); the range buttons.
TEXTS = """<script>
setTimeout(function(){var gd=document.getElementById('landscape-figure');var out={texts:[],buttons:[]};
 var box=function(t){var b=t.getBoundingClientRect();return [b.left,b.top,b.right,b.bottom];};
 gd.querySelectorAll('text').forEach(function(t){var b=box(t);
  if(b[2]>b[0]&&b[3]>b[1]&&(t.textContent||'').trim())
   out.texts.push(b.concat([t.textContent,(t.parentNode.getAttribute('class')||'')+' '+
   (t.getAttribute('class')||''),!!t.closest('.updatemenu-button')]));});
 gd.querySelectorAll('.updatemenu-button').forEach(function(t){out.buttons.push(box(t));});
 document.title='PROBE'+JSON.stringify(out);},2500);
</script>"""


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("kind", ["interp", "random"])
def test_page_text_does_not_overlap(tmp_path, size, kind):
    from browser import browser_or_skip

    browser = browser_or_skip()
    p = str(tmp_path / "c.h5")
    (_interp if kind == "interp" else _random)(p)
    render_surface(p, str(tmp_path), "html")
    page = (tmp_path / "c.html").read_text(encoding="utf-8")
    probed = tmp_path / "probe.html"
    probed.write_text(page.replace("</body>", TEXTS + "</body>"), encoding="utf-8")
    flags = ["--headless", "--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
             "--hide-scrollbars", "--virtual-time-budget=8000", f"--window-size={size[0]},{size[1]}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    m = re.search(r"<title>PROBE(.*?)</title>", dom, re.S)
    assert m, "the page never finished drawing"
    res = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    texts = [t for t in res["texts"] if not t[6]]  # a button's label lies on its button: those come below
    ticks = [t for t in texts if "tick" in t[5]]
    zeros = [t for t in ticks if t[4] == "0" and ("ytick" in t[5] or "y2tick" in t[5])]
    assert len(zeros) == 2  # the loss axis's and the accuracy axis's
    names = [t for t in texts if t[4] in ("θ*", "A: r20_s1/final", "B: r20_s2/final")]
    assert len(names) == (2 if kind == "interp" else 1)
    # every text of the plot (ticks, axis titles, the marks' names, the buttons, the legend) clear of the others
    for i, a in enumerate(texts):
        for b in texts[i + 1:]:
            assert not (a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1), \
                f"{size}: {a[4]!r} {a[:4]} overlaps {b[4]!r} {b[:4]}"
    assert len(res["buttons"]) == (2 if kind == "interp" else 2)  # both files' loss axes are cut
    for b in res["buttons"]:
        for a in texts:
            assert not (a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1), \
                f"{size}: {a[4]!r} {a[:4]} under a range button {b}"
