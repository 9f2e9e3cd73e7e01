"""The interactive pages in a real headless Chromium: the 3D surface draws (WebGL), no JavaScript errors, and the
comparison page's 3D views rotate together. CI installs Chromium (.ci/run) and sets LANDSCAPE_REQUIRE_BROWSER=1,
so there a missing browser is a failure, not a skip."""

import json
import os
import re
import subprocess

import numpy as np
import pytest
from PIL import Image

from landscape.render import render_comparison, render_surface
from test_render import _surface
from browser import browser_or_skip
from test_render_figures import _bowl, _curve

BROWSER = browser_or_skip()

FLAGS = ["--headless", "--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
         "--window-size=1400,1000", "--virtual-time-budget=10000", "--hide-scrollbars"]
SIZES = [(1280, 800), (1400, 1000), (1920, 1080)]

# Collect errors from the very start; after load, count canvases with a WebGL context and, for comparison pages,
# rotate the first scene and read the second scene's camera back. The answer goes into document.title.
PROBE_HEAD = ("<script>window.__errors=[];window.addEventListener('error',function(e){"
              "window.__errors.push(String(e.message));});</script>")
PROBE_TAIL = """<script>
setTimeout(function(){
 var gd=document.getElementById('landscape-figure');var out={errors:window.__errors};
 var c=document.querySelectorAll('canvas');out.canvases=c.length;out.webgl=0;
 c.forEach(function(x){try{if(x.getContext('webgl')||x.getContext('webgl2'))out.webgl++;}catch(e){}});
 out.plotly=!!(gd&&gd._fullLayout);
 if(gd&&gd._fullLayout&&gd._fullLayout.scene2){
  Plotly.relayout(gd,{'scene.camera':{eye:{x:2.1,y:0.2,z:0.4}}}).then(function(){
   setTimeout(function(){out.synced=gd._fullLayout.scene2.camera.eye.x;document.title='PROBE'+JSON.stringify(out);},500);});
 } else { document.title='PROBE'+JSON.stringify(out); }
},2500);
</script>"""


# Where everything landed, in CSS pixels: the window, the page's scroll size, the figure, every piece of text
# Plotly drew (titles, ticks, colour-bar labels), the buttons, and each 3D scene's box.
FIT_TAIL = """<script>
setTimeout(function(){
 var gd=document.getElementById('landscape-figure');var fl=gd._fullLayout;var r=gd.getBoundingClientRect();
 var out={iw:innerWidth,ih:innerHeight,sw:document.documentElement.scrollWidth,
  sh:document.documentElement.scrollHeight,fig:[r.left,r.top,r.right,r.bottom],text:[],scenes:[]};
 gd.querySelectorAll('text, .updatemenu-button').forEach(function(t){var b=t.getBoundingClientRect();
  if(b.width>0&&b.height>0&&(t.textContent||'').trim())out.text.push([b.left,b.top,b.right,b.bottom,t.textContent]);});
 Object.keys(fl).filter(function(k){return /^scene\\d*$/.test(k);}).forEach(function(k){
  var d=fl[k].domain,s=fl._size;out.scenes.push([r.left+s.l+d.x[0]*s.w,r.top+s.t+(1-d.y[1])*s.h,
   r.left+s.l+d.x[1]*s.w,r.top+s.t+(1-d.y[0])*s.h]);});
 out.maps=[];Object.keys(fl).filter(function(k){return /^xaxis\\d*$/.test(k);}).forEach(function(k){
  var x=fl[k],y=x._anchorAxis;out.maps.push([r.left+x._offset,r.top+y._offset,r.left+x._offset+x._length,
   r.top+y._offset+y._length]);});
 document.title='PROBE'+JSON.stringify(out);
},2500);
</script>"""


def _run(page, tmp_path, tail, size=(1400, 1000), shot=True):
    text = open(page, encoding="utf-8").read()
    probed = tmp_path / ("probe_" + os.path.basename(page))
    probed.write_text(text.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", tail + "</body>"))
    flags = [f for f in FLAGS if not f.startswith("--window-size")] + [f"--window-size={size[0]},{size[1]}"]
    dom = subprocess.run([BROWSER, *flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    m = re.search(r"<title>PROBE(.*?)</title>", dom, re.S)
    assert m, "the page never finished drawing (no probe result)"
    img = None
    if shot:
        png = tmp_path / "shot.png"
        subprocess.run([BROWSER, *flags, f"--screenshot={png}", probed.as_uri()], capture_output=True, timeout=120)
        img = np.asarray(Image.open(png).convert("RGB"))
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&")), img


def _probe(page, tmp_path):
    return _run(page, tmp_path, PROBE_TAIL)


def _assert_fits(res, img, what, scrolls=False):
    """Nothing outside the window, nothing to scroll to (``scrolls``: nothing to scroll to sideways; the page may
    go on below the window), and no 3D scene drawn up to its box's edge (a cut corner touches the edge)."""
    iw, ih = res["iw"], res["ih"]
    assert res["sw"] <= iw and (scrolls or res["sh"] <= ih), \
        f"{what}: the page scrolls ({res['sw']}x{res['sh']} in {iw}x{ih})"
    left, top, right, bottom = res["fig"]
    assert left >= 0 and top >= 0 and right <= iw + 0.5 and (scrolls or bottom <= ih + 0.5), \
        f"{what}: figure {res['fig']}"
    assert len(res["text"]) > 10
    for x0, y0, x1, y1, t in res["text"]:
        assert x0 >= -0.5 and y0 >= -0.5 and x1 <= iw + 0.5 and (scrolls or y1 <= ih + 0.5), f"{what}: {t!r} cut off"
    if img is None:
        return
    for x0, y0, x1, y1 in (s for s in res["scenes"] if s[3] <= img.shape[0]):  # the ones in the screenshot
        x0, y0, x1, y1 = int(np.ceil(x0)) + 1, int(np.ceil(y0)) + 1, int(x1) - 2, int(y1) - 2
        assert x1 - x0 > 150 and y1 - y0 > 150, f"{what}: a 3D scene of {x1 - x0}x{y1 - y0} px"
        frame = np.concatenate([img[y0:y1, x0:x0 + 3].reshape(-1, 3), img[y0:y1, x1 - 3:x1].reshape(-1, 3),
                                img[y0:y0 + 3, x0:x1].reshape(-1, 3), img[y1 - 3:y1, x0:x1].reshape(-1, 3)])
        inked = (frame.astype(int).sum(1) < 720).mean()
        assert inked < 0.005, f"{what}: the 3D view reaches its scene's edge ({inked:.1%} of the frame drawn on)"
        inside = img[y0:y1, x0:x1].reshape(-1, 3)
        assert (inside.astype(int).sum(1) < 600).mean() > 0.005  # and the scene is drawn at all


def test_surface_page_draws_webgl_without_errors(tmp_path):
    p = str(tmp_path / "s.h5")
    _surface(p, nx=15, ny=15)
    render_surface(p, str(tmp_path), "html")
    res, img = _probe(str(tmp_path / "s.html"), tmp_path)
    assert res["errors"] == [] and res["plotly"] and res["webgl"] >= 1
    # The 3D scene sits in the left half below the title: it must hold many colours (a drawn, shaded surface).
    scene = img[150:900, 0:700].reshape(-1, 3)
    assert len(np.unique(scene, axis=0)) > 500
    assert (scene.astype(int).sum(1) < 600).mean() > 0.05  # a good part is not white


def test_comparison_page_rotates_together(tmp_path):
    a, b = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    _surface(a, holes=False)
    _surface(b, holes=False)
    render_comparison([a, b], str(tmp_path), "html")
    res, _ = _probe(str(tmp_path / "comparison.html"), tmp_path)
    assert res["errors"] == [] and res["webgl"] >= 1
    assert res["synced"] == pytest.approx(2.1)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_surface_page_fits_the_window(tmp_path, size):
    p = str(tmp_path / "s.h5")
    _bowl(p)
    render_surface(p, str(tmp_path), "html")
    res, img = _run(str(tmp_path / "s.html"), tmp_path, FIT_TAIL, size)
    assert len(res["scenes"]) == 1
    _assert_fits(res, img, f"surface page at {size}")


def test_a_1d_page_fits_the_smallest_window(tmp_path):
    # (the comparison page: test_comparison_page_has_full_size_panels)
    c = str(tmp_path / "c.h5")
    _curve(c)
    render_surface(c, str(tmp_path), "html")
    res, _ = _run(str(tmp_path / "c.html"), tmp_path, FIT_TAIL, SIZES[0], shot=False)
    _assert_fits(res, None, "1D page")
    assert any("full range" in t[4] for t in res["text"])  # the button is on screen


@pytest.mark.parametrize("size", [SIZES[0], SIZES[2]], ids=lambda s: f"{s[0]}x{s[1]}")
def test_comparison_page_has_full_size_panels(tmp_path, size):
    """On a 16:10 or 16:9 window the comparison's panels are as wide as their columns, the page scrolling down
    (fitted to the window's height they were a third of a column, beside blank bands): two square maps of one
    size side by side, each seen whole in the window; the 3D views above them fill their columns; the rows close
    together."""
    a, b = str(tmp_path / "resnet56.h5"), str(tmp_path / "plain56.h5")
    _bowl(a)
    _bowl(b, arch="plain56", floor=1.2)
    render_comparison([a, b], str(tmp_path), "html")
    res, img = _run(str(tmp_path / "comparison.html"), tmp_path, FIT_TAIL, size)
    assert len(res["scenes"]) == 2
    _assert_fits(res, img, f"comparison page at {size}", scrolls=True)
    iw, ih = res["iw"], res["ih"]
    assert res["sh"] > ih and res["sw"] <= iw  # it scrolls down, not sideways
    (m1, m2), scenes = sorted(res["maps"]), sorted(res["scenes"])
    for m in (m1, m2):
        w, h = m[2] - m[0], m[3] - m[1]
        assert w == pytest.approx(h, abs=2) and 0.37 * iw < w and h < ih, f"a map {m} in {iw}x{ih}"
    assert m1[1] == pytest.approx(m2[1], abs=2) and m1[2] - m1[0] == pytest.approx(m2[2] - m2[0], abs=2)
    assert m1[2] < m2[0] and res["fig"][3] - m1[3] < 80  # side by side; little below them
    for s, m in zip(scenes, (m1, m2)):
        assert s[2] - s[0] > 0.9 * (m[2] - m[0]) and m[1] - s[3] < 0.12 * (m[2] - m[0]), f"3D view {s} above {m}"
    # the first 3D view, in the screenshot: its drawing spans most of its scene's width
    x0, y0, x1, y1 = (int(v) for v in scenes[0])
    ys, xs = np.nonzero(img[y0 + 2:y1 - 2, x0 + 2:x1 - 2].astype(int).sum(2) < 600)
    assert xs.max() - xs.min() > 0.6 * (x1 - x0), (xs.min(), xs.max(), x1 - x0)
