"""Benchmark: drawing a large surface (the reference authors' 1001x1001 recipe), and bytes written per block.

    python bench/render_large.py make /tmp/big.h5 --n 1001            # a synthetic 1001x1001 surface file
    python bench/render_large.py render /tmp/big.h5 --out /tmp/figs  # time, peak memory, sizes, Chromium
    python bench/render_large.py render /tmp/big.h5 --root /tmp/before --out /tmp/figs_before   # another checkout
    python bench/render_large.py writes --n 51 --n 1001                # bytes written per finished block

``make`` writes the file with h5py alone (the format of DESIGN section 6), so every version of the code reads the
same file. The surface is smooth like a trained network's (a tilted bowl with ripples and steep walls), so its
contour lines are as long and as many as a real one's. ``render`` runs ``render_surface`` in a fresh process
(imports included) with the code under ``--root`` (default: this checkout) and reports wall time, the child's
peak resident memory, each file's size, and how long headless Chromium takes to load the page and draw it.
``writes`` counts the bytes the writer passes to the kernel (``wchar`` of /proc/self/io) per finished block.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def synthetic(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coords, loss, accuracy) of a smooth, rippled basin on [-1, 1]^2."""
    c = np.linspace(-1.0, 1.0, n)
    a, b = np.meshgrid(c, c)
    r2 = (1.3 * a) ** 2 + (0.8 * b + 0.25 * a) ** 2
    loss = 0.05 + 3.0 * r2 + 0.8 * r2 * (np.sin(9 * a) * np.cos(7 * b + 1)) ** 2 + 6.0 * r2 ** 2
    loss += 0.3 * r2 * np.sin(23 * a + 17 * b) ** 2  # finer structure towards the walls
    acc = 100.0 * np.exp(-loss / 2)
    return c, loss, acc


def make(path: str, n: int) -> None:
    import h5py

    c, loss, acc = synthetic(n)
    with h5py.File(path, "w") as f:
        f["xcoordinates"], f["ycoordinates"] = c, c
        f["train_loss"], f["train_acc"] = loss, acc
        f["train_done"] = np.ones_like(loss, dtype=bool)
        for k, v in {"format_version": 1, "arch": "synthetic", "split": "train", "dataset": "synthetic",
                     "loss": "cross_entropy"}.items():
            f.attrs[k] = v
    print(f"{path}: {n}x{n} synthetic surface, {os.path.getsize(path) / 1e6:.1f} MB")


RENDER = """
import sys, time
t = time.perf_counter()
from landscape.render import render_surface
out = render_surface(sys.argv[1], sys.argv[2], sys.argv[3])
print("SECONDS", time.perf_counter() - t)
"""

# Set the title once Plotly has drawn the figure (its layout exists and a WebGL canvas is there).
PROBE = """<script>
(function poll(){var gd=document.getElementById('landscape-figure');
 var ok=gd&&gd._fullLayout&&document.querySelectorAll('canvas').length>0;
 if(ok){document.title='DRAWN '+(performance.now()/1000).toFixed(2);}else{setTimeout(poll,50);}})();
</script>"""


def chromium_seconds(page: str) -> tuple[float, str]:
    """Wall seconds of headless Chromium loading ``page`` until the figure is drawn (start-up included), and
    the page's own clock at that moment."""
    browser = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
    if browser is None:
        return float("nan"), "no chromium"
    probed = os.path.join(tempfile.mkdtemp(), "probe.html")
    text = open(page, encoding="utf-8").read()
    with open(probed, "w", encoding="utf-8") as f:
        f.write(text.replace("</body>", PROBE + "</body>"))
    t = time.perf_counter()
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--enable-unsafe-swiftshader",
                          "--use-angle=swiftshader", "--window-size=1400,1000", "--virtual-time-budget=30000",
                          "--dump-dom", "file://" + probed], capture_output=True, text=True, timeout=600).stdout
    wall = time.perf_counter() - t
    m = re.search(r"<title>DRAWN ([0-9.]+)</title>", dom)
    return wall, (f"drawn at {m.group(1)} s page time" if m else "NOT DRAWN")


def render(path: str, out: str, root: str, formats: str, browser: bool) -> dict:
    os.makedirs(out, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=root, OMP_NUM_THREADS="1")
    t = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-c", RENDER, path, out, formats], cwd=root, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    stdout, stderr = p.stdout.read(), p.stderr.read()
    if status != 0:
        raise SystemExit(f"render failed:\n{stderr[-3000:]}")
    res = {"root": root, "formats": formats, "wall_s": round(wall, 2),
           "render_s": round(float(re.search(r"SECONDS ([0-9.]+)", stdout).group(1)), 2),
           "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
           "files_mb": {f: round(os.path.getsize(os.path.join(out, f)) / 1e6, 2) for f in sorted(os.listdir(out))}}
    pages = [f for f in os.listdir(out) if f.endswith(".html")]
    if browser and pages:
        s, note = chromium_seconds(os.path.join(out, pages[0]))
        res["chromium_s"], res["chromium"] = round(s, 2), note
    return res


def writes(n: int, block: int = 1) -> dict:
    """Bytes written per finished block by :class:`SurfaceWriter` on an n x n grid (blocks at the grid's middle)."""
    sys.path.insert(0, ROOT)
    from landscape.surface import SurfaceWriter, parse_grid

    d = tempfile.mkdtemp()
    x = parse_grid(f"-1:1:{n}")
    settings = {"arch": "bench", "split": "train"}
    dirs = [np.zeros(4, dtype=np.float32)]

    def wchar() -> int:
        return int(re.search(r"wchar: (\d+)", open("/proc/self/io").read()).group(1))

    per = []
    with SurfaceWriter(os.path.join(d, "s.h5"), x, x, settings, dirs, dirs, ["w"]) as w:
        todo = w.pending()
        start = len(todo) // 2
        for k in range(10):
            idx = todo[start + k * block:start + (k + 1) * block]
            before = wchar()
            w.write_block(idx, [1.0] * len(idx), [50.0] * len(idx))
            per.append(wchar() - before)
    shutil.rmtree(d)
    return {"grid": f"{n}x{n}", "points_per_block": block, "bytes_per_block_median": int(np.median(per)),
            "bytes_per_block_max": int(max(per))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("path")
    m.add_argument("--n", type=int, default=1001)
    r = sub.add_parser("render")
    r.add_argument("path")
    r.add_argument("--out", required=True)
    r.add_argument("--root", default=ROOT, help="checkout whose landscape package draws (default: this one)")
    r.add_argument("--formats", default="png,html")
    r.add_argument("--no-browser", action="store_true")
    w = sub.add_parser("writes")
    w.add_argument("--n", type=int, action="append", default=None)
    w.add_argument("--block", type=int, default=16)
    a = p.parse_args()
    if a.cmd == "make":
        make(a.path, a.n)
    elif a.cmd == "render":
        print(json.dumps(render(a.path, a.out, os.path.abspath(a.root), a.formats, not a.no_browser)))
    else:
        for n in a.n or [51, 1001]:
            print(json.dumps(writes(n, a.block)))


if __name__ == "__main__":
    main()
