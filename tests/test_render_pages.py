"""The interactive pages from a phone-sized window (400 px wide) to a desktop one, in a real headless Chromium: on a
narrow window the panels stack, nothing reaches past the window's width, no colour bar covers a plot, and the
comparison page has one settings block. Headless Chromium's window is at least 500 px wide, so the 400 px case loads
the page in a 400 px frame. CI sets LANDSCAPE_REQUIRE_BROWSER=1: there a missing browser fails, not skips."""

import html
import json
import os
import re
import subprocess

import numpy as np
import pytest

from landscape.render import render_comparison, render_surface
from browser import browser_or_skip
from test_render_figures import _bowl, _curve

BROWSER = browser_or_skip()

FLAGS = ["--headless", "--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
         "--virtual-time-budget=10000", "--hide-scrollbars"]

# In the page (inside the frame for the narrow case): the window's width, the page's scroll width, every panel's
# plot area (3D scene or x/y axes), every colour bar, legend, toolbar and piece of text, in CSS pixels; the answer goes
# into the top document's title.
PROBE = """<script>
setTimeout(function(){if(window.parent!==window&&innerWidth>=500)window.dispatchEvent(new Event('resize'));},3500);
setTimeout(function(){var gd=document.getElementById('landscape-figure');
 var f=gd._transitionData&&gd._transitionData._frames;
 if(f&&f.length)Plotly.animate(gd,[f[f.length-1].name],{frame:{duration:0},transition:{duration:0},mode:'immediate'});
},2000);
setTimeout(function(){
 var gd=document.getElementById('landscape-figure'),fl=gd._fullLayout,r=gd.getBoundingClientRect(),s=fl._size;
 var box=function(e){var b=e.getBoundingClientRect();return [b.left,b.top,b.right,b.bottom];};
 var out={iw:innerWidth,sw:document.documentElement.scrollWidth,settings:document.querySelectorAll('.settings').length,
  narrow:document.body.className.indexOf('narrow')>=0,panels:[],bars:[],parts:[]};
 Object.keys(fl).forEach(function(k){
  if(/^scene\\d*$/.test(k)){var d=fl[k].domain;out.panels.push([r.left+s.l+d.x[0]*s.w,r.top+s.t+(1-d.y[1])*s.h,
   r.left+s.l+d.x[1]*s.w,r.top+s.t+(1-d.y[0])*s.h]);}
  if(/^xaxis\\d*$/.test(k)){var x=fl[k],y=x._anchorAxis;out.panels.push([r.left+x._offset,r.top+y._offset,
   r.left+x._offset+x._length,r.top+y._offset+y._length]);}});
 gd.querySelectorAll('.colorbar').forEach(function(e){out.bars.push(box(e));});
 var parts='text, .legend, .modebar, .updatemenu-container, .slider-container, .colorbar';
 gd.querySelectorAll(parts).forEach(function(e){
  var b=e.getBoundingClientRect();
  if(b.width>0&&b.height>0)out.parts.push(box(e).concat([e.textContent||e.className.baseVal||e.className]));});
 (window.parent||window).document.title='PROBE'+JSON.stringify(out);
},%d);
</script>"""


def _load(page, tmp_path, width, widen=False):
    """Start loading ``page`` shown ``width`` CSS pixels wide (``widen``: then widened to 1280 px, as a phone
    turned or a window dragged wider); :func:`_answer` reads the probe's answer."""
    text = open(page, encoding="utf-8").read().replace("</body>", PROBE % (6000 if widen else 3000) + "</body>")
    probed = tmp_path / f"probe_{width}{'_widened' if widen else ''}_{os.path.basename(page)}"
    if width < 500:  # the narrowest window headless Chromium opens: a narrower page goes in a frame
        # (a frame resized under virtual time gets no resize event: the probe sends one)
        grow = "<script>setTimeout(function(){document.querySelector('iframe').style.width='1280px';},3000);</script>"
        probed.write_text(f"<!DOCTYPE html><html><head><title>host</title></head><body style='margin:0'><iframe "
                          f"style='border:0;width:{width}px;height:800px' srcdoc=\"{html.escape(text, quote=True)}\">"
                          f"</iframe>{grow if widen else ''}</body></html>", encoding="utf-8")
    else:
        probed.write_text(text, encoding="utf-8")
    return subprocess.Popen([BROWSER, *FLAGS, f"--window-size={1280 if widen else max(width, 500)},800", "--dump-dom",
                             probed.as_uri()],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _answer(proc):
    dom = proc.communicate(timeout=120)[0]
    m = re.search(r"<title>PROBE(.*?)</title>", dom, re.S)
    assert m, "the page never finished drawing (no probe result)"
    return json.loads(html.unescape(m.group(1)))


def _overlap(a, b, slack=1.0):
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


def _check(res, what, stacked):
    iw = res["iw"]
    assert res["sw"] <= iw, f"{what}: the page scrolls sideways ({res['sw']} in {iw})"
    for *b, name in res["parts"]:
        assert b[0] >= -0.5 and b[2] <= iw + 0.5, f"{what}: {name!r} reaches past the window {b}"
    panels = res["panels"]
    assert panels, what
    for p in panels:
        assert p[0] >= -0.5 and p[2] <= iw + 0.5 and p[2] - p[0] > 100, f"{what}: a panel {p} in {iw} px"
    for i, a in enumerate(panels):
        for b in panels[i + 1:]:
            assert not _overlap(a, b), f"{what}: panels {a} and {b} overlap"
            if stacked:  # one below the other: their heights do not overlap
                assert a[3] <= b[1] + 1 or b[3] <= a[1] + 1, f"{what}: panels {a} and {b} side by side"
    for bar in res["bars"]:
        for p in panels:
            assert not _overlap(bar, p), f"{what}: a colour bar {bar} covers a plot {p}"


def _movie_page(tmp_path):
    """An animation page of two movies of three frames (a frame of a movie is merged into the drawn panel: the
    probe plays to the last one before it measures)."""
    from landscape.render.animate import render_page, shared_scale

    g = np.linspace(-1, 1, 9)
    bowl = g[None, :] ** 2 + g[:, None] ** 2
    movies = [dict(x=g, y=g, steps=np.arange(3), path=str(tmp_path / f"m{i}.h5"), attrs={"unit": "epoch"},
                   values={"train_loss": np.stack([bowl * (3 - k) + 0.1 + i for k in range(3)])}) for i in range(2)]
    return render_page(movies, str(tmp_path / "movie.html"), shared_scale(movies))


def test_pages_stack_on_a_phone_and_fit_a_desktop(tmp_path):
    a, b, c = str(tmp_path / "resnet56.h5"), str(tmp_path / "plain56.h5"), str(tmp_path / "c.h5")
    _bowl(a)
    _bowl(b, arch="plain56", floor=1.2)
    _curve(c)
    render_surface(a, str(tmp_path), "html")
    render_surface(c, str(tmp_path), "html")
    render_comparison([a, b], str(tmp_path), "html")
    pages = {"surface": str(tmp_path / "resnet56.html"), "1D": str(tmp_path / "c.html"),
             "comparison": str(tmp_path / "comparison.html"), "movie": _movie_page(tmp_path)}
    runs = {(name, w): _load(p, tmp_path, w) for name, p in pages.items() for w in (400, 1280)}
    runs["comparison", "widened"] = _load(pages["comparison"], tmp_path, 400, widen=True)
    results = {k: _answer(p) for k, p in runs.items()}
    for (name, w), res in results.items():
        _check(res, f"{name} page at {w} px", stacked=w == 400)
        assert res["settings"] == 1, f"{name} page at {w} px: {res['settings']} settings blocks"
        assert res["narrow"] == (w == 400), f"{name} page at {w} px"
    assert len(results["comparison", 400]["panels"]) == 4 and len(results["surface", 400]["panels"]) == 2
    # stacked, every panel has its colour bar beside it (one per row of the wide layout: the others were hidden)
    assert len(results["comparison", 400]["bars"]) == 4 and len(results["comparison", 1280]["bars"]) == 2
    assert len(results["movie", 400]["panels"]) == 2 and len(results["movie", 400]["bars"]) == 2
    assert len(results["movie", 1280]["bars"]) == 1
    for name in ("comparison", "movie"):  # each bar beside its own panel: its middle within the panel's height
        res = results[name, 400]
        for bar in res["bars"]:
            mid = (bar[1] + bar[3]) / 2
            assert any(p[1] <= mid <= p[3] for p in res["panels"]), (name, bar, res["panels"])
    # narrow, then wide: the page's own layout is back, as if it had been opened wide (the frame is taller than
    # the window's page, and a square map's size follows the height: only the columns' centres compare)
    wide, back = results["comparison", 1280], results["comparison", "widened"]
    centres = [(p[0] + p[2]) / 2 for p in wide["panels"]]
    assert back["iw"] == wide["iw"] and [(p[0] + p[2]) / 2 for p in back["panels"]] == pytest.approx(centres, abs=3)


def test_a_maps_colour_bar_spans_the_map_as_drawn(tmp_path):
    """A flat plane (a trajectory's PCA plane, 3:1) drawn 1:1 is a short map: its colour bar had the figure's
    height beside it, with blank bands above and below; on a wide window it spans the map."""
    import h5py

    x, y = np.linspace(-3, 3, 31), np.linspace(-1, 1, 11)
    xx, yy = np.meshgrid(x, y)
    p = str(tmp_path / "flat.h5")
    with h5py.File(p, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = x, y
        f["train_loss"], f["train_done"] = 0.05 + xx ** 2 + 3 * yy ** 2, np.ones(xx.shape, dtype=bool)
        f.attrs["format_version"], f.attrs["arch"], f.attrs["split"] = 1, "resnet20", "train"
    render_surface(p, str(tmp_path), "html")
    res = _answer(_load(str(tmp_path / "flat.html"), tmp_path, 1280))
    _check(res, "flat plane at 1280 px", stacked=False)
    (scene, flat) = sorted(res["panels"])  # the 3D scene (left), the map (right)
    assert (flat[2] - flat[0]) / (flat[3] - flat[1]) == pytest.approx(6.2 / 2.2, rel=0.02)  # cells, 1:1
    bar = max(res["bars"], key=lambda b: b[0])  # the map's, at the right
    assert bar[1] >= flat[1] - 0.1 * (flat[3] - flat[1]) and bar[3] <= flat[3] + 0.1 * (flat[3] - flat[1])
    assert bar[3] - bar[1] > 0.8 * (flat[3] - flat[1])
