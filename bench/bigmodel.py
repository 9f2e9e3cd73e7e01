"""Memory and time of a surface of a large model: today's path (a copy of the model, directions stored) against the
lean one (in place, regenerated directions), and the loss-landscapes library as the peer.

Each measurement runs in a fresh process, which reports, in the Linux kernel's own accounting (``VmRSS``, and
``VmHWM`` reset through ``/proc/self/clear_refs``):

* ``beyond``: the peak resident memory during the surface, minus what the model and its data held before it and
  minus the peak of one forward pass over the same data (measured just before): what the surface itself costs;
* ``moving``: the bytes of the tensors that move, and ``beyond / moving``;
* seconds per point (the surface's computing time over its points, figures off), and the file's size.

Models: a GPT-2 (``--model gpt2``, ``--layers``/``--width``; transformers, random weights, no download) on a few
sequences of random tokens, or a stack of linear layers (``--model mlp``, for the tests). Usage::

    python bench/bigmodel.py --model gpt2 --layers 12 --width 768 --path lean     # GPT-2 small, 0.12 B
    python bench/bigmodel.py --model gpt2 --layers 12 --width 768 --path all      # lean, classic and the peer

Prints one ``RESULT`` line per path and appends JSON records with ``--json FILE``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def status(key: str) -> int:
    """A ``/proc/self/status`` field in bytes (``VmRSS``, ``VmHWM``)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def reset_peak() -> None:
    """Reset ``VmHWM`` to the current ``VmRSS`` (Linux: ``clear_refs`` 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def build(args):
    import torch

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if args.model == "mlp":
        layers = [torch.nn.Linear(args.width, args.width) for _ in range(args.layers)]
        net = torch.nn.Sequential(*layers, torch.nn.Linear(args.width, 10)).eval()
        x = torch.randn(args.sequences, args.width, generator=g)
        return net, (x, torch.randint(0, 10, (args.sequences,), generator=g)), None
    import transformers

    transformers.logging.set_verbosity_error()
    cfg = transformers.GPT2Config(n_layer=args.layers, n_embd=args.width, n_head=max(1, args.width // 64),
                                  vocab_size=args.vocab, n_positions=args.seq_len, bos_token_id=0, eos_token_id=0)
    net = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # no zero vectors, as after training (loss-landscapes' filter norm divides by them)
        for p in net.parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape, generator=g) * 0.02)
    ids = torch.randint(0, args.vocab, (args.sequences, args.seq_len), generator=g)
    return net, {"input_ids": ids, "labels": ids}, cfg


def child(args) -> dict:
    """One measurement in this process (see the module docstring)."""
    import torch

    torch.set_num_threads(args.threads)
    _warm_up(args)
    net, data, _ = build(args)
    params = sum(p.numel() for p in net.parameters())
    rss0 = status("VmRSS")
    reset_peak()
    with torch.no_grad():
        (net(**data) if isinstance(data, dict) else net(data[0]))
    forward = status("VmHWM") - rss0
    rss1 = status("VmRSS")
    reset_peak()
    t = time.time()
    if args.path == "peer":
        seconds, points, size = _peer(net, data, args)
    else:
        import landscape

        res = landscape.compute(net, data=data, x=f"-1:1:{args.grid}", y=f"-1:1:{args.grid}", render=False,
                                progress=False, out=args.out, name=f"{args.path}_{params}_{os.getpid()}",
                                lean=args.path == "lean")
        seconds, points, size = res.seconds, res.computed, os.path.getsize(res.path)
        os.remove(res.path)
    wall = time.time() - t
    peak = status("VmHWM")
    moving = sum(p.numel() * p.element_size() for p in net.parameters() if p.dim() > 1)  # --ignore biasbn
    beyond = peak - rss1 - forward
    return {"path": args.path, "model": args.model, "params": params, "moving_bytes": moving,
            "model_bytes": sum(p.numel() * p.element_size() for p in net.parameters()),
            "forward_peak": forward, "beyond": beyond, "beyond_ratio": beyond / moving,
            "seconds_per_point": seconds / max(points, 1), "points": points, "wall": wall, "file_bytes": size,
            "file_ratio": size / moving if size else None, "threads": args.threads, "torch": torch.__version__}


def _warm_up(args) -> None:
    """A tiny surface first, so the code the measured one imports (h5py, the modules of landscape) is already in
    memory: code is not what the surface costs."""
    import torch

    if args.path == "peer":
        import loss_landscapes  # noqa: F401
        return
    import landscape
    from landscape.seeded import normals

    normals(1, 0, 1 << 15, compiled=True)  # the fused generator, compiled once per process (code, not data)
    tiny = torch.nn.Linear(4, 2)
    for lean in (False, True):
        res = landscape.compute(tiny, data=(torch.randn(8, 4), torch.randint(0, 2, (8,))), x="-1:1:2", y="-1:1:2",
                                render=False, progress=False, out=args.out, name=f"warm_{os.getpid()}_{lean}",
                                lean=lean)
        os.remove(res.path)


def _peer(net, data, args):
    """loss-landscapes' random_plane, filter-normalized, on the same model and data (a wrapper gives it the
    (inputs, targets) interface it expects)."""
    import loss_landscapes
    import loss_landscapes.metrics
    import torch
    import torch.nn.functional as F

    if isinstance(data, dict):
        ids = data["input_ids"]

        class LM(torch.nn.Module):  # loss_landscapes calls model(inputs): logits of a causal LM
            def __init__(self, m):
                super().__init__()
                self.m = m

            def forward(self, x):
                return self.m(input_ids=x).logits

        model, inputs, target = LM(net), ids, ids

        def loss_fn(out, y):
            return F.cross_entropy(out[:, :-1].reshape(-1, out.shape[-1]), y[:, 1:].reshape(-1))
    else:
        model, (inputs, target), loss_fn = net, data, F.cross_entropy
    metric = loss_landscapes.metrics.Loss(loss_fn, inputs, target)
    t = time.time()
    with torch.no_grad():
        loss_landscapes.random_plane(model, metric, distance=1, steps=args.grid, normalization="filter",
                                     deepcopy_model=True)
    return time.time() - t, args.grid * args.grid, 0


def verify(args) -> int:
    import numpy as np
    import torch

    import landscape
    from landscape.directions import load_directions
    from landscape.surface import read_surface

    torch.set_num_threads(args.threads)
    net, data, _ = build(args)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    grid = dict(x=f"-1:1:{args.grid}", y=f"-1:1:{args.grid}", render=False, progress=False, out=args.out)
    name = f"verify_{os.getpid()}"
    lean = landscape.compute(net, data=data, name=name, **grid)  # defaults: the size decides the path
    unchanged = all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    moving = sum(p.numel() * p.element_size() for p in net.parameters() if p.dim() > 1)
    dx, dy = load_directions(lean.path, net)
    copy = landscape.compute(net, data=data, name=name + "_copy", lean=False,
                             directions=landscape.Directions.of(net, dx, dy), **grid)
    a, b = read_surface(lean.path).values["train_loss"], read_surface(copy.path).values["train_loss"]
    calls = {"n": 0}

    def interrupt(*_):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt

    hook = net.register_forward_hook(interrupt)
    try:
        landscape.compute(net, data=data, name=name + "_cut", **grid)
        cut = False
    except KeyboardInterrupt:
        cut = True
    hook.remove()
    after_cut = all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    print(f"RESULT verify params={sum(p.numel() for p in net.parameters()) / 1e6:.1f}M engine='{lean.engine}' "
          f"max_rel_diff={float(np.max(np.abs(a - b) / np.abs(b))):.2e} file={os.path.getsize(lean.path) / moving:.4%} "
          f"unchanged={unchanged} interrupted={cut} unchanged_after_interrupt={after_cut}")
    return 0


def generator_speed(threads: int) -> int:
    import torch

    from landscape.seeded import normals, tensor_key

    torch.set_num_threads(threads)
    key, n = tensor_key(123, 0, 0), 1 << 24
    for compiled in (False, True):
        normals(key, 0, 1 << 16, compiled=compiled)
        t = time.perf_counter()
        normals(key, 0, n, compiled=compiled)
        print(f"RESULT generator compiled={compiled} normals_per_s={n / (time.perf_counter() - t) / 1e6:.0f}M "
              f"threads={threads} torch={torch.__version__}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=("gpt2", "mlp"), default="gpt2")
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--width", type=int, default=768)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--sequences", type=int, default=4)
    p.add_argument("--grid", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--path", choices=("lean", "classic", "peer", "all"), default="lean")
    p.add_argument("--out", default="/tmp/landscape_bigmodel")
    p.add_argument("--json", default=None)
    p.add_argument("--generator", action="store_true", help="instead: the direction generator's normals/s, eager "
                   "and fused by torch.compile (16 M normals, after one warm-up call each)")
    p.add_argument("--verify", action="store_true", help="instead: the surface with default settings (the lean "
                   "path chosen by size), its values against the same directions on a copy of the model, and the "
                   "model bitwise unchanged after it and after a run interrupted mid-grid")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.generator:
        return generator_speed(args.threads)
    if args.verify:
        return verify(args)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    paths = ("lean", "classic", "peer") if args.path == "all" else (args.path,)
    for path in paths:
        given = list(argv if argv is not None else sys.argv[1:])
        argv_child = [a for i, a in enumerate(given)
                      if a != "--path" and not a.startswith("--path=") and (i == 0 or given[i - 1] != "--path")]
        r = subprocess.run([sys.executable, __file__, *argv_child, "--path", path, "--child"], capture_output=True,
                           text=True, env=dict(os.environ, PYTHONPATH=ROOT))
        if r.returncode != 0:
            print(f"RESULT path={path} failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
            continue
        rec = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"RESULT path={path} params={rec['params'] / 1e6:.1f}M moving={rec['moving_bytes'] / 2**20:.0f}MiB "
              f"beyond={rec['beyond'] / 2**20:.0f}MiB ({rec['beyond_ratio']:.2f}x moving) "
              f"s/point={rec['seconds_per_point']:.2f} file={rec['file_bytes'] / 2**20:.2f}MiB")
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
