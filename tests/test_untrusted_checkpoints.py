"""Hostile checkpoints, safetensors files and direction files (issue #24): every malformed input ends in one
:class:`LandscapeError` line naming what is wrong, never a traceback, an allocation blow-up or an all-NaN surface.

The files are written here in the real formats (torch.save, safetensors bytes by hand, HDF5), then damaged.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import re
import resource
import struct
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch

from conftest import make_model
from landscape.checkpoints import load_checkpoint, save_checkpoint
from landscape.directions import load_directions, make_directions
from landscape.errors import LandscapeError
from landscape.seeded import make_seeded
from landscape.tensorfile import read_safetensors

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}
K = "layer1.0.conv1.weight"  # a (16, 16, 3, 3) weight of resnet20


@contextlib.contextmanager
def memory_cap(extra: int = 3 << 30):
    """At most ``extra`` bytes of address space beyond what the process holds: an allocation blow-up becomes a
    MemoryError/RuntimeError (a failed test) instead of a machine out of memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        used = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmSize:"))
    cap = used + extra if hard == resource.RLIM_INFINITY else min(used + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def refused(fn, *args, match: str, **kw) -> str:
    """The one-line LandscapeError ``fn`` raises, checked against ``match`` (under the memory cap)."""
    with memory_cap(), pytest.raises(LandscapeError, match=match) as e:
        fn(*args, **kw)
    assert "\n" not in str(e.value)
    return str(e.value)


# -- safetensors, written by hand ---------------------------------------------------------------------------------

def st_parts(tensors: dict, metadata: dict | None = None) -> tuple[dict, bytes]:
    """The header (a dict) and the data of a safetensors file holding ``tensors``."""
    header, chunks, off = {}, [], 0
    for k, t in tensors.items():
        b = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        header[k] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        chunks.append(b)
        off += len(b)
    if metadata is not None:
        header["__metadata__"] = metadata
    return header, b"".join(chunks)


def st_write(path, header, body: bytes, hlen: int | None = None) -> str:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw) if hlen is None else hlen) + raw + body)
    return str(path)


@pytest.fixture(scope="module")
def r20_state():
    return make_model().state_dict()


def _neg(h):
    h[K]["shape"] = [-16, -16, 3, 3]  # the same element count: only the sign is wrong


def _wrap(h):  # 2**64 elements: an int64 product wraps around to 0, which 0 bytes "match"
    h[K]["shape"], h[K]["data_offsets"] = [2**32, 2**32], [0, 0]


def _overlap(h):
    h["layer1.0.conv2.weight"]["data_offsets"] = list(h[K]["data_offsets"])


@pytest.mark.parametrize("edit,match", [
    (_neg, rf"tensor '{K}' declares shape \[-16, -16, 3, 3\]; a shape is a list of at most 64 whole numbers >= 0"),
    (lambda h: h.update({K: [16, 16, 3, 3]}), rf"tensor '{K}' has a malformed header entry \[16, 16, 3, 3\]; "
                                              "expected an object with 'dtype', 'shape' and 'data_offsets'"),
    (lambda h: h.update(__metadata__=["arch", "resnet20"]), r"'__metadata__' must be an object of strings .*got "
                                                            r"\['arch', 'resnet20'\]"),
    (lambda h: h.update(__metadata__={"num_classes": 10}), r"'__metadata__' must be an object of strings"),
    (lambda h: h[K].update(data_offsets=[0, 10**15]), rf"tensor '{K}' lies beyond the end of the file \(bytes "
                                                      r"0-1000000000000000 of \d+ bytes"),
    (_overlap, rf"tensors '{K}' and 'layer1.0.conv2.weight' overlap \(bytes"),
    (lambda h: h[K].update(dtype="F64"), rf"tensor '{K}' has 9216 bytes for shape \[16, 16, 3, 3\] of F64 \(8 "
                                         r"bytes each: 18432 expected\)"),
    (_wrap, rf"tensor '{K}' declares shape \[4294967296, 4294967296\], more than 1,125,899,906,842,624 elements"),
    (lambda h: h[K].update(shape=[16, 16, 3, 3.0]), rf"tensor '{K}' declares shape \[16, 16, 3, 3.0\]"),
    (lambda h: h[K].update(data_offsets=[5]), rf"tensor '{K}' has data_offsets \[5\]; expected \[start, end\]"),
])
def test_malformed_safetensors_headers_are_refused_naming_the_entry(tmp_path, r20_state, edit, match):
    header, body = st_parts(r20_state, {"arch": "resnet20"})
    edit(header)
    p = st_write(tmp_path / "w.safetensors", header, body)
    refused(load_checkpoint, p, match=match)


def test_safetensors_header_nesting_and_length_are_refused(tmp_path, r20_state):
    header, body = st_parts(r20_state)
    deep = st_write(tmp_path / "deep.safetensors", b"[" * 100_000 + b"]" * 100_000, body)
    refused(load_checkpoint, deep, match=r"corrupt safetensors header \(RecursionError\)")
    listed = st_write(tmp_path / "list.safetensors", [1, 2], body)
    refused(load_checkpoint, listed, match=r"corrupt safetensors header \(a JSON list, not an object")
    size = len(json.dumps(header)) + len(body) + 8
    long = st_write(tmp_path / "long.safetensors", header, body, hlen=size * 4)
    refused(load_checkpoint, long, match=rf"header length {size * 4} for a {size}-byte file")


def test_malformed_safetensors_indexes_are_refused(tmp_path, r20_state):
    header, body = st_parts(r20_state)
    st_write(tmp_path / "a.safetensors", header, body)
    cases = [({"metadata": ["x"], "weight_map": {k: "a.safetensors" for k in r20_state}},
              r"the index's 'metadata' is a list; it must be a JSON object"),
             ({"weight_map": {k: ["a.safetensors"] for k in r20_state}},
              r"the weight_map names the shard of tensor 'conv1.weight' as \['a.safetensors'\]"),
             ([1, 2], r"is not a safetensors index \(it is a JSON list\)"),
             ({"weight_map": "a.safetensors"}, r"is not a safetensors index \(its 'weight_map' is 'a.safetensors'\)")]
    for i, (index, match) in enumerate(cases):
        p = tmp_path / f"m{i}.safetensors.index.json"
        p.write_text(json.dumps(index))
        refused(load_checkpoint, str(p), match=match)
    deep = tmp_path / "deep.safetensors.index.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    refused(load_checkpoint, str(deep), match=r"is not a safetensors index .*: RecursionError")
    ok = tmp_path / "ok.safetensors.index.json"  # HuggingFace's metadata holds a number: still read
    ok.write_text(json.dumps({"metadata": {"total_size": len(body)}, "weight_map": {k: "a.safetensors"
                                                                                   for k in r20_state}}))
    assert load_checkpoint(str(ok), arch="resnet20")[1]["num_classes"] == 10



def test_a_sharded_checkpoint_takes_each_tensor_from_the_shard_its_index_names(tmp_path, r20_state):
    keys = list(r20_state)
    other = {k: (v + 1 if v.is_floating_point() else v) for k, v in r20_state.items()}  # a stale copy of everything
    st_write(tmp_path / "a.safetensors", *st_parts({k: r20_state[k] for k in keys[::2]}))
    st_write(tmp_path / "b.safetensors", *st_parts({**other, **{k: r20_state[k] for k in keys[1::2]}}))
    for order in (keys, keys[::-1]):  # the shards' order in the index must not matter
        p = tmp_path / "m.safetensors.index.json"
        p.write_text(json.dumps({"weight_map": {k: "a.safetensors" if i % 2 == 0 else "b.safetensors"
                                                for i, k in sorted(enumerate(keys), key=lambda e: order.index(e[1]))}}))
        net, _ = load_checkpoint(str(p), arch="resnet20")
        assert all(torch.equal(net.state_dict()[k], r20_state[k]) for k in keys)


# -- torch checkpoints ---------------------------------------------------------------------------------------------

def _save(tmp_path, name: str, state: dict | None = None, **meta) -> str:
    m = make_model()
    p = tmp_path / f"{name}.pt"
    save_checkpoint(str(p), m, "resnet20", dataset="digits", normalization={"mean": [0.3], "std": [0.4]})
    obj = torch.load(p, weights_only=True)
    if state is not None:
        obj["state_dict"].update(state)
    obj.update(meta)
    torch.save(obj, p)
    return str(p)


@pytest.mark.parametrize("key,value,match", [
    ("num_classes", -3, r"records num_classes=int -3; expected a whole number from 1 to 36,864"),
    ("num_classes", "ten", r"records num_classes=str 'ten'; expected a whole number"),
    ("num_classes", True, r"records num_classes=bool True"),
    ("num_classes", 2.5, r"records num_classes=float 2.5"),
    ("num_classes", 10**12, r"records num_classes=int 1000000000000; expected a whole number from 1 to 36,864, "
                            r"its largest tensor's size \(a classifier of N classes has at least N weights\)"),
    ("in_channels", -3, r"records in_channels=int -3"),
    ("in_channels", "one", r"records in_channels=str 'one'"),
    ("in_channels", 10**9, r"records in_channels=int 1000000000"),
    ("normalization", "imagenet", r"records normalization=str 'imagenet'; expected \{\"mean\": \[\.\.\.\], "
                                  r"\"std\": \[\.\.\.\]\}"),
    ("normalization", {"mean": [float("nan")], "std": [0.4]}, r"records normalization mean=\[nan\]"),
    ("normalization", {"mean": [0.3], "std": [0.0]}, r"records normalization std=\[0.0\]"),
    ("normalization", {"mean": "abc", "std": "def"}, r"records normalization mean='abc'"),
    ("normalization", {"mean": [0.3] * 3, "std": [1.0] * 3}, r"a normalization of 3 mean and 3 std values for a "
                                                             r"network of 1 input channels"),
    ("history", "long", r"records history=str 'long'; expected a dict of per-epoch lists"),
])
def test_malformed_checkpoint_metadata_is_refused(tmp_path, key, value, match):
    refused(load_checkpoint, _save(tmp_path, "bad", **{key: value}), match=match)


def test_well_formed_metadata_in_other_types_still_loads(tmp_path):
    """numpy integers (old training scripts) and a normalization saved as tensors are numbers too."""
    p = _save(tmp_path, "np", num_classes=np.int64(10), in_channels=torch.tensor(1),
              normalization={"mean": torch.tensor([0.3]), "std": (0.4,)})
    _, info = load_checkpoint(p)
    assert (info["num_classes"], info["in_channels"]) == (10, 1) and type(info["num_classes"]) is int
    assert info["normalization"] == {"mean": [pytest.approx(0.3)], "std": [0.4]}
    _, info = load_checkpoint(_save(tmp_path, "float", num_classes=10.0))  # loaded before; still does
    assert info["num_classes"] == 10 and type(info["num_classes"]) is int
    _, info = load_checkpoint(_save(tmp_path, "none", num_classes=None, in_channels=None))  # None: not recorded
    assert (info["num_classes"], info["in_channels"]) == (10, 1)
    header, body = st_parts(make_model().state_dict(), {  # safetensors metadata is text
        "arch": "resnet20", "num_classes": "10", "in_channels": "1", "normalization": '{"mean": [0.3], "std": [0.4]}',
        "history": '{"train_err": [50.0, 20.5], "test_err": [55.0, 30.1]}'})
    _, info = load_checkpoint(st_write(tmp_path / "text.safetensors", header, body))
    assert (info["num_classes"], info["in_channels"]) == (10, 1)
    assert info["normalization"] == {"mean": [0.3], "std": [0.4]}, info


def test_degenerate_shapes_do_not_break_architecture_detection(tmp_path):
    """A VGG-like state_dict whose last convolution has no channels (shape_hints divided by zero)."""
    p = tmp_path / "vgg0.pt"
    torch.save({"features.0.weight": torch.zeros(0, 3, 3, 3), "fc.0.weight": torch.zeros(10, 64)}, p)
    refused(load_checkpoint, str(p), match=r"does not record its architecture and its keys match no built-in one")


def test_an_expanded_tensor_is_refused_before_anything_reads_it(tmp_path):
    """One stored float declared as 200,000 x 200,000: the NaN check alone would allocate 40 GB."""
    p = _save(tmp_path, "expand", {K: torch.zeros(1).expand(200_000, 200_000)})
    assert os.path.getsize(p) < 2 << 20
    t0 = time.perf_counter()
    msg = refused(load_checkpoint, p, match=rf"tensor '{K}' declares shape \(200000, 200000\) \(40,000,000,000 "
                                            r"elements\) but its storage holds 1 \(an expanded or overlapping view")
    assert "contiguous()" in msg and time.perf_counter() - t0 < 5
    small = _save(tmp_path, "small", {"linear.weight": torch.zeros(1).expand(10, 64)})  # would load, shared
    refused(load_checkpoint, small, match=r"tensor 'linear.weight' declares shape \(10, 64\) \(640 elements\)")


@pytest.mark.parametrize("key,index,value,match", [
    ("bn1.running_var", 3, -1.0, r"the BatchNorm buffer 'bn1.running_var' holds negative variances \(1 of 16, "
                                 r"smallest -1\)"),
    ("layer2.1.bn2.running_var", 0, float("nan"), r"non-finite values \(NaN/inf\) in the BatchNorm buffer "
                                                  r"'layer2.1.bn2.running_var' \(1 of 32 entries\)"),
    ("layer1.0.bn1.running_mean", 5, float("inf"), r"in the BatchNorm buffer 'layer1.0.bn1.running_mean'"),
])
def test_impossible_batchnorm_statistics_are_refused_by_name(tmp_path, key, index, value, match):
    t = make_model().state_dict()[key].clone()
    t[index] = value
    refused(load_checkpoint, _save(tmp_path, "bn", {key: t}), match=match)


# -- direction files -----------------------------------------------------------------------------------------------

def _reference_file(path, model, edit=None) -> str:
    """The reference's direction-file layout: groups xdirection/ydirection of datasets '0'..'N-1'."""
    x, y = make_directions(model, seed=3)
    with h5py.File(path, "w") as f:
        for group, d in (("xdirection", x), ("ydirection", y)):
            g = f.create_group(group)
            for i, t in enumerate(d):
                g.create_dataset(str(i), data=t.numpy())
        if edit:
            edit(f)
    return str(path)


def _set(group: str, i: int, flat: int, value: float):
    def edit(f):
        a = f[group][str(i)][()]
        a.flat[flat] = value
        f[group][str(i)][...] = a
    return edit


def _huge(f):  # chunked and never written: the file stays small, the declared array is 40 GB
    del f["xdirection/3"]
    f["xdirection"].create_dataset("3", shape=(100_000, 100_000), dtype="f4", chunks=(1000, 1000))


def _text(f):
    del f["xdirection/3"]
    f["xdirection"].create_dataset("3", data=np.array([b"abc"]))


def _flat(f):
    del f["ydirection"]
    f.create_dataset("ydirection", data=np.zeros(3))


@pytest.mark.parametrize("edit,match", [
    (_set("xdirection", 3, 0, float("nan")), rf"xdirection tensor 3 \('{K}'\) holds 1 NaN/inf values of 2304, "
                                             "which would make every point of the surface NaN"),
    (_set("ydirection", 0, 5, float("-inf")), r"ydirection tensor 0 \('conv1.weight'\) holds 1 NaN/inf values of 144"),
    (_huge, rf"xdirection tensor 3 \('{K}'\) declares shape \(100000, 100000\) but the model's '{K}' is "
            r"\(16, 16, 3, 3\)"),
    (_text, rf"xdirection tensor 3 \('{K}'\) has dtype \|S3; direction tensors are numbers"),
    (_flat, r"'ydirection' is a Dataset, not a group of one dataset per tensor"),
])
def test_malformed_direction_files_are_refused_naming_the_tensor(tmp_path, model, edit, match):
    p = _reference_file(tmp_path / "dirs.h5", model, edit)
    assert os.path.getsize(p) < 4 << 20
    refused(load_directions, p, model, match=match)


def test_regenerable_directions_with_a_nan_scale_are_refused(tmp_path, model):
    seeded = make_seeded(model, two_d=True)
    p = str(tmp_path / "lean.h5")
    with h5py.File(p, "w") as f:
        seeded.write(f)
        i = next(int(k) for k in f["ydirection/scales"])
        s = f["ydirection/scales"][str(i)][()]
        s[0] = np.nan
        f["ydirection/scales"][str(i)][...] = s
    name = list(dict(model.named_parameters()))[i]
    refused(load_directions, p, model, match=rf"ydirection tensor {i} \('{name}'\) holds \d+ NaN/inf values")


# -- the CLI: one line on stderr, exit code 2 -----------------------------------------------------------------------

def test_the_cli_says_it_in_one_line_and_exits_2(tmp_path, model, r20_state):
    header, body = st_parts(r20_state)
    cases = [(["--ckpt", _save(tmp_path, "ten", num_classes="ten")], "records num_classes=str 'ten'"),
             (["--ckpt", st_write(tmp_path / "deep.safetensors", b"[" * 100_000 + b"]" * 100_000, body)],
              "corrupt safetensors header (RecursionError)"),
             (["--ckpt", _save(tmp_path, "ok"), "--directions", _reference_file(tmp_path / "d.h5", model, _huge)],
              f"xdirection tensor 3 ('{K}') declares shape (100000, 100000)")]
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    for args, needle in cases:
        r = subprocess.run([sys.executable, "-m", "landscape.plot", *args, "--x", "-1:1:3", "--y", "-1:1:3",
                            "--samples", "32", "--out", str(tmp_path / "out"), "--no-render", "--quiet"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
        assert lines[0].startswith("landscape.plot: error: ") and needle in lines[0], lines[0]
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# -- fuzzing: random damage, only success or one LandscapeError line ----------------------------------------------

POOL = [-3, 0, 1, 10, "ten", "10", "-1", True, 2.5, 10**12, 10**400, None, [], {}, [1, 2], {"a": 1}, float("nan"),
        float("inf"), "", "x" * 500, [[[[]]]]]


def _loads_sanely(path: str) -> str:
    """Loading ``path`` either works and gives a usable model (finite weights, valid BN variances and counts)
    or raises one LandscapeError line; anything else fails the test. Returns the error, or ``"loaded"``."""
    try:
        net, info = load_checkpoint(path)
    except LandscapeError as e:
        assert "\n" not in str(e), str(e)
        return str(e)
    for k, v in net.state_dict().items():
        if v.is_floating_point():
            assert bool(torch.isfinite(v).all()) and not (k.endswith("running_var") and bool((v < 0).any())), k
    assert type(info["num_classes"]) is int and info["num_classes"] >= 1
    assert info["in_channels"] is None or (type(info["in_channels"]) is int and info["in_channels"] >= 1)
    norm = info.get("normalization")
    assert norm is None or all(math.isfinite(v) for v in norm["mean"] + norm["std"]), norm
    return "loaded"


def _kinds(outcomes: list[str]) -> set[str]:
    """What the outcomes were, as the phrases that tell the errors apart (paths left out)."""
    return {re.sub(r"'[^']*'|\d+", "", o.split(": ", 1)[-1])[:40] for o in outcomes}


def _mutate_header(rng: random.Random, header: dict, body_len: int) -> object:
    h = copy.deepcopy(header)
    names = [k for k in h if k != "__metadata__"]
    k = rng.choice(names)
    op = rng.randrange(9)
    if op == 0:
        same = {"F32": "I32", "I64": "F64"}.get(h[k]["dtype"], h[k]["dtype"])  # same size: loads
        h[k]["dtype"] = rng.choice([same, same, "F64", "F16", "BF16", "U8", "BOOL", "F8", "", 3, None, ["F32"]])
    elif op == 1:
        shape = list(h[k]["shape"]) or [1]  # a 0-dim tensor (num_batches_tracked) gains a dimension
        shape[rng.randrange(len(shape))] = rng.choice([-1, 0, 2**31, 2**62, 2**64, 1.5, "3", True, [3], None])
        h[k]["shape"] = rng.choice([shape, [], [1] * 65, shape + [1], shape[:-1], 7])
    elif op == 2:
        a, b = h[k]["data_offsets"]
        h[k]["data_offsets"] = rng.choice([[b, a], [a, body_len + rng.randrange(1, 99)], [-1, b], [a, b, b], [a],
                                           [float(a), b], [str(a), b], h[rng.choice(names)]["data_offsets"],
                                           [a + 1, b + 1], None, {"a": a}])
    elif op == 3:
        h[k] = rng.choice(POOL)
    elif op == 4:
        del h[k]
    elif op == 5:
        h["extra.weight"] = copy.deepcopy(h[rng.choice(names)])
    elif op == 6:
        h["__metadata__"] = rng.choice([["a"], "arch", {"arch": 3}, {"arch": "resnet20", "num_classes": rng.choice(
            ["-3", "ten", "0", "10", "10", "99999999999999999999", ""])}, {"in_channels": rng.choice(["1", "1", "-1"])},
            {"normalization": rng.choice(["imagenet", '{"mean": [0.3], "std": [0.4]}', '{"mean": [NaN], "std": [1]}',
                                          '{"mean": 0.3}', "[" * 5000 + "]" * 5000, "{" + "[" * 5000])}])
    elif op == 7:
        return rng.choice([[h], 3, "x", None])
    else:
        h[k]["shape"] = [rng.choice([2**32, 2**40, 2**20]) for _ in range(rng.randrange(2, 5))]
        h[k]["data_offsets"] = [h[k]["data_offsets"][0]] * 2
    return h


def test_fuzzed_safetensors_files_load_or_are_refused_in_one_line(tmp_path, r20_state):
    rng = random.Random(24)
    header, body = st_parts(r20_state, {"arch": "resnet20"})
    raw = json.dumps(header).encode()
    p, outcomes = str(tmp_path / "f.safetensors"), []
    with memory_cap():
        for i in range(150):
            kind = rng.random()
            if kind < 0.6:
                st_write(p, json.dumps(_mutate_header(rng, header, len(body))).encode(), body)
            elif kind < 0.85:  # bytes of the header flipped: mostly broken JSON, sometimes another header
                b = bytearray(raw)
                for _ in range(rng.randrange(1, 6)):
                    b[rng.randrange(len(b))] = rng.choice(b'0123456789-[]{}",:e. x')
                st_write(p, bytes(b), body)
            else:  # a wrong header length, or the file cut short
                data = struct.pack("<Q", len(raw)) + raw + body
                if rng.random() < 0.5:
                    data = struct.pack("<Q", rng.choice([0, 1, 9, len(raw) - 1, len(raw) + 1, 2**63])) + data[8:]
                else:
                    data = data[:rng.randrange(len(data))]
                with open(p, "wb") as f:
                    f.write(data)
            try:
                read_safetensors(p)
            except LandscapeError as e:
                assert "\n" not in str(e), (i, str(e))
            outcomes.append(_loads_sanely(p))
    # both outcomes, and many different refusals: the mutations reach past the first check
    assert outcomes.count("loaded") >= 3 and len(_kinds(outcomes)) >= 15, sorted(_kinds(outcomes))


def _mutate_checkpoint(rng: random.Random, obj: dict, sd: dict) -> object:
    obj = dict(obj, state_dict=dict(sd))
    for _ in range(rng.randrange(1, 3)):
        op = rng.randrange(8)
        if op == 0:
            obj[rng.choice(["num_classes", "in_channels"])] = rng.choice(POOL + [np.int64(7), torch.tensor(3)])
        elif op == 1:
            obj["normalization"] = rng.choice(POOL + [{"mean": rng.choice(POOL), "std": rng.choice(POOL)},
                                                      {"mean": [0.3], "std": [rng.choice([0.4, -1.0, 0.0, 1e400])]},
                                                      {"mean": [0.1] * rng.randrange(4), "std": [0.2]}])
        elif op == 2:
            obj[rng.choice(["history", "arch", "epoch"])] = rng.choice(POOL + ["resnet20", "plain20", "nope"])
        elif op == 3:
            obj["state_dict"] = rng.choice([[], "weights", {}, {1: torch.zeros(3)}, {"x": "y"},
                                            dict(sd, **{"evil\nkey" * rng.randrange(1, 99): torch.zeros(3)})])
        else:
            s = obj["state_dict"]
            if not isinstance(s, dict) or not s:
                continue
            k = rng.choice(list(s))
            t = s[k]
            if not isinstance(t, torch.Tensor):
                continue
            s[k] = rng.choice([
                lambda: torch.zeros(1).expand(*(t.shape or (2,))) if t.dim() else torch.zeros(1).expand(4),
                lambda: torch.zeros(1).expand(100_000, 100_000),
                lambda: torch.full_like(t, rng.choice([float("nan"), float("inf")])) if t.is_floating_point() else t,
                lambda: -t.abs() - 1 if str(k).endswith("running_var") else t.double(),
                lambda: torch.zeros([d + 1 for d in t.shape] or [2]),
                lambda: t.to(rng.choice([torch.int64, torch.bool, torch.float16, torch.bfloat16, torch.complex64])),
                lambda: t.to_sparse() if t.dim() else t, lambda: torch.empty(0), lambda: "a string",
                lambda: torch.empty(t.shape, device="meta")])()
            if rng.random() < 0.2:
                del s[k]
    return obj


@pytest.mark.filterwarnings("ignore:Validating sparse tensor invariants")
def test_fuzzed_torch_checkpoints_load_or_are_refused_in_one_line(tmp_path):
    rng = random.Random(24)
    base = _save(tmp_path, "base")
    obj = torch.load(base, weights_only=True)
    sd = obj["state_dict"]
    p, outcomes = str(tmp_path / "f.pt"), []
    with memory_cap():
        for i in range(150):
            torch.save(_mutate_checkpoint(rng, obj, sd), p)
            if rng.random() < 0.2:  # and the bytes of the file damaged
                data = bytearray(open(p, "rb").read())
                for _ in range(rng.randrange(1, 9)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                with open(p, "wb") as f:
                    f.write(data[:rng.randrange(len(data) // 2, len(data) + 1)])
            outcomes.append(_loads_sanely(p))
    assert outcomes.count("loaded") >= 5 and len(_kinds(outcomes)) >= 15, sorted(_kinds(outcomes))
