"""The interactive pages in a real headless Chromium: the 3D surface draws (WebGL), no JavaScript errors, and the
comparison page's 3D views rotate together. CI installs Chromium (.ci/run) and sets LANDSCAPE_REQUIRE_BROWSER=1,
so there a missing browser is a failure, not a skip."""

import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from landscape.render import render_comparison, render_surface
from test_render import _surface

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
if BROWSER is None:
    if os.environ.get("LANDSCAPE_REQUIRE_BROWSER") == "1":
        raise RuntimeError("LANDSCAPE_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
    pytest.skip("no headless Chromium on PATH", allow_module_level=True)

FLAGS = ["--headless", "--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
         "--window-size=1400,1000", "--virtual-time-budget=10000", "--hide-scrollbars"]

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


def _probe(page, tmp_path):
    text = open(page, encoding="utf-8").read()
    probed = tmp_path / ("probe_" + os.path.basename(page))
    probed.write_text(text.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "</body>"))
    dom = subprocess.run([BROWSER, *FLAGS, "--dump-dom", probed.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    m = re.search(r"<title>PROBE(.*?)</title>", dom, re.S)
    assert m, "the page never finished drawing (no probe result)"
    shot = tmp_path / "shot.png"
    subprocess.run([BROWSER, *FLAGS, f"--screenshot={shot}", probed.as_uri()], capture_output=True, timeout=120)
    return json.loads(m.group(1).replace("&quot;", '"')), np.asarray(Image.open(shot).convert("RGB"))


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
    res, _ = _probe(str(tmp_path / "comparison_compare.html"), tmp_path)
    assert res["errors"] == [] and res["webgl"] >= 1
    assert res["synced"] == pytest.approx(2.1)
