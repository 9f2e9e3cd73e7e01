"""The lean path for large models: the caller's model perturbed in place and given back bitwise, directions
regenerated from recorded seeds (files that do not grow with the model), --params, half-precision weights."""

import copy
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import landscape
from landscape.directions import load_directions, select_params
from landscape.errors import LandscapeError
from landscape.seeded import SeededDirections, make_seeded, normals, tensor_key
from landscape.surface import read_surface
from byhand import crash_and_resume, moved, raising_after

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID = dict(x="-1:1:3", y="-1:1:3", render=False, progress=False)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


@pytest.fixture
def net():
    torch.manual_seed(0)
    m = Net()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-0.2, 0.2)
        m.bn.running_var.uniform_(0.5, 1.5)
    return m.train()  # a notebook's model in training mode: it must come back in it


@pytest.fixture(scope="module")
def data(digits_small):
    return digits_small.x[:64].clone(), digits_small.y[:64].clone()


def state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def same(m, before):
    return all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


def test_the_generator_is_counter_based_and_gaussian():
    """Any chunk on its own equals the same elements of a longer run (the chunking is not part of the values), and
    the values look like standard normals."""
    key = tensor_key(123, 0, 7)
    long = normals(key, 0, 300_001)
    assert torch.equal(normals(key, 12_345, 1_001), long[12_345:13_346])
    assert torch.equal(normals(key, 1, 2), long[1:3])  # an odd start: the second normal of a Box-Muller pair
    assert abs(float(long.mean())) < 0.01 and abs(float(long.std()) - 1) < 0.01
    assert abs(float((long[:-1] * long[1:]).mean())) < 0.01  # neighbours uncorrelated
    other = normals(tensor_key(123, 1, 7), 0, 300_001)  # the y direction of the same tensor
    assert abs(float((long * other).mean())) < 0.01  # another key: another sequence


def test_the_compiled_generator_gives_the_eager_values_bit_for_bit():
    pytest.importorskip("torch._inductor")
    try:
        fused = normals(tensor_key(5, 0, 1), 777, 200_003, compiled=True)
    except Exception as e:  # noqa: BLE001 - no C++ compiler here: the fallback warns and is tested by equality too
        pytest.skip(f"torch.compile unavailable: {e}")
    assert torch.equal(fused, normals(tensor_key(5, 0, 1), 777, 200_003))


def test_lean_equals_the_materialized_path_and_leaves_the_model_bitwise_as_it_came(tmp_path, net, data):
    x, y = data
    before = state(net)
    lean = landscape.compute(net, data=(x, y), lean=True, out=str(tmp_path), name="lean", **GRID)
    assert "lean" in lean.engine
    assert same(net, before) and net.training and net.bn.training
    with h5py.File(lean.path) as f:  # the recipe, not the tensors
        g = f["xdirection"]
        assert g.attrs["generator"] == "squares64-boxmuller-v1" and "0" not in g and "keys" in g
        seeded = SeededDirections.read(f, "weights", "random")
    dense = seeded.materialize(net)
    classic = landscape.compute(net, data=(x, y), directions=dense, lean=False, out=str(tmp_path), name="dense",
                                **GRID)
    a, b = read_surface(lean.path).values["train_loss"], read_surface(classic.path).values["train_loss"]
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)
    for i, j in ((0, 0), (2, 1)):  # and by hand, on a copy moved by the rebuilt tensors
        with torch.no_grad():
            assert a[i, j] == pytest.approx(float(F.cross_entropy(moved(net, classic.path, i, j)(x), y)), rel=1e-6)


def test_regenerable_directions_rebuild_bit_for_bit_and_save_in_the_references_format(tmp_path, net, data):
    x, y = data
    res = landscape.compute(net, data=(x, y), lean=True, save_directions=True, out=str(tmp_path), name="s", **GRID)
    with h5py.File(res.path) as f:
        seeded = SeededDirections.read(f, "weights", "random")
    whole = seeded.materialize(net)
    rows = [torch.cat([seeded.chunk(i, 0, r, min(r + 2, p.shape[0]), torch.device("cpu"))
                       for r in range(0, p.shape[0], 2)]) for i, p in enumerate(seeded.plans) if p.kind == 1]
    assert all(torch.equal(a, b) for a, b in zip(rows, [d for d, p in zip(whole.x, seeded.plans) if p.kind == 1]))
    # the seeds made at the start equal the ones a fresh plan makes: the file's are what a resume regenerates
    again = make_seeded(net, True, 123, "filter", "biasbn")
    assert all(p.keys == q.keys and all(np.array_equal(s, t) for s, t in zip(p.scales, q.scales) if s is not None)
               for p, q in zip(seeded.plans, again.plans))
    saved = str(tmp_path / "s_directions.h5")
    with h5py.File(saved) as f:  # the reference's layout: xdirection/"0".."N-1"
        assert sorted(f["xdirection"].keys(), key=int) == [str(i) for i in range(len(whole.x))]
    xs, ys = load_directions(saved, net)
    assert all(torch.equal(a, b) for a, b in zip(xs + ys, whole.x + whole.y))
    xs2, _ = load_directions(res.path, net)  # --directions on the lean surface file itself rebuilds them too
    assert all(torch.equal(a, b) for a, b in zip(xs2, whole.x))
    # filter-normalized: each filter of the direction has the norm of the same filter of the weights
    w = net.conv.weight.detach()
    np.testing.assert_allclose(whole.x[0].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-5)
    assert torch.count_nonzero(whole.x[1]) == 0  # the conv bias: --ignore biasbn


def test_an_interrupted_lean_run_gives_the_model_back_and_resumes_to_the_same_values(tmp_path, net, data):
    x, y = data
    before = state(net)
    full = landscape.compute(net, data=(x, y), lean=True, out=str(tmp_path), name="full", **GRID)
    done, again = crash_and_resume(net, 4, data=(x, y), lean=True, out=str(tmp_path), name="cut", **GRID)
    assert 0 < done < 9 and again.computed == 9 - done
    np.testing.assert_array_equal(read_surface(again.path).values["train_loss"],
                                  read_surface(full.path).values["train_loss"])
    with raising_after(net, 4, KeyboardInterrupt()), pytest.raises(KeyboardInterrupt):
        landscape.compute(net, data=(x, y), lean=True, out=str(tmp_path), name="ctrl_c", **GRID)
    assert same(net, before) and net.training  # Ctrl-C mid-grid: theta*, mode, device all back


class LoRALinear(nn.Module):
    """A frozen base layer with a low-rank adapter, as the LoRA recipes write it."""

    def __init__(self, d_in, d_out, rank=2):
        super().__init__()
        self.base = nn.Linear(d_in, d_out)
        self.lora_A = nn.Parameter(torch.randn(rank, d_in) * 0.1)
        self.lora_B = nn.Parameter(torch.randn(d_out, rank) * 0.1)

    def forward(self, x):
        return self.base(x) + x @ self.lora_A.t() @ self.lora_B.t()


def test_params_moves_only_the_matching_tensors_e_g_lora_adapters(tmp_path):
    torch.manual_seed(1)
    net = nn.Sequential(LoRALinear(16, 16), nn.ReLU(), LoRALinear(16, 4)).eval()
    x, y = torch.randn(40, 16), torch.randint(0, 4, (40,))
    names = [n for n, _ in net.named_parameters()]
    assert select_params(names, "*lora*") == ["lora" in n for n in names]
    assert select_params(names, "*,!*lora*") == ["lora" not in n for n in names]
    assert select_params(names, r"re:^2\.") == [n.startswith("2.") for n in names]
    with pytest.raises(LandscapeError, match="matches none of the model's 8 tensors"):
        select_params(names, "*attn*")
    for lean in (False, True):
        res = landscape.compute(net, data=(x, y), params="*lora*", lean=lean, out=str(tmp_path),
                                name=f"lora_{lean}", **GRID)
        s = read_surface(res.path)
        assert s.attrs["params"] == "*lora*"
        d = load_directions(res.path, net)[0]
        assert [bool(t.count_nonzero()) for t in d] == ["lora" in n for n in names]
        with torch.no_grad():
            want = float(F.cross_entropy(moved(net, res.path, 0, 2)(x), y))
        assert s.values["train_loss"][0, 2] == pytest.approx(want, rel=1e-6)
    # the adapters' directions are those of the whole-network surface, restricted to them (same seed, same draw)
    full = load_directions(landscape.compute(net, data=(x, y), lean=False, out=str(tmp_path), name="all",
                                             **GRID).path, net)[0]
    part = load_directions(str(tmp_path / "lora_False.h5"), net)[0]
    assert all(torch.equal(a, b) for a, b, n in zip(part, full, names) if "lora" in n)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("lean", [False, True])
def test_half_precision_weights_take_steps_below_their_rounding(tmp_path, dtype, lean):
    """theta* + a*dx is computed in float32 and rounded once into the model's dtype: the weights at every point
    equal that, bit for bit (a step computed in the half type would be lost below its rounding), and the losses
    follow those of a float32 copy moved by the same directions, within the type's rounding."""
    torch.manual_seed(2)
    ref = nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 5)).eval()
    net = copy.deepcopy(ref).to(dtype)
    x, y = torch.randn(50, 32), torch.randint(0, 5, (50,))
    seen = []
    hook = net[0].register_forward_pre_hook(lambda m, _: seen.append(m.weight.detach().clone()))
    res = landscape.compute(net, data=(x, y), lean=lean, one_d=True, x="-0.004:0.004:5", out=str(tmp_path),
                            render=False, progress=False)
    hook.remove()
    s = read_surface(res.path)
    assert s.attrs["precision"] == {torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    dx = load_directions(res.path, net)[0]
    xs = s.xcoordinates
    theta = net[0].weight.detach().float()
    for a, w in zip(xs, seen[-len(xs):]):  # the last len(xs) forwards are the grid points, in order
        assert torch.equal(w, (theta + dx[0] * float(a)).to(dtype))
    naive = net[0].weight.detach() + (dx[0] * float(xs[-1])).to(dtype)  # the step in the half type, rounded twice
    assert not torch.equal(naive, seen[-1])  # ... which the check above would have caught
    f32 = landscape.compute(ref.float(), data=(x, y), directions=landscape.Directions.of(ref, *load_directions(
        res.path, net)), one_d=True, x="-0.004:0.004:5", out=str(tmp_path), name="f32", render=False,
        progress=False)
    v16, v32 = s.values["train_loss"], read_surface(f32.path).values["train_loss"]
    eps = {torch.bfloat16: 2 ** -8, torch.float16: 2 ** -11}[dtype]
    assert np.abs(v16 - v32).max() < 50 * eps * np.abs(v32).max()
    assert v16[0] != v16[2] and v16[4] != v16[2]  # the curve moves: no step was lost


def test_lean_memory_beyond_the_model_is_about_one_copy_of_the_moving_weights(tmp_path):
    """A 42 M-parameter network: the surface's peak memory beyond the model, its data and one forward pass, in the
    kernel's own accounting (bench/bigmodel.py), is at most 1.25x the moving weights on the lean path (today's
    path: several times that); the file holds no tensors."""
    rec = tmp_path / "m.jsonl"
    for path in ("lean", "classic"):
        r = subprocess.run([sys.executable, "bench/bigmodel.py", "--model", "mlp", "--width", "2048", "--layers",
                            "10", "--sequences", "8", "--grid", "2", "--path", path, "--json", str(rec), "--out",
                            str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0 and "failed" not in r.stdout, r.stdout + r.stderr[-2000:]
    lean, classic = (json.loads(line) for line in rec.read_text().splitlines())
    assert lean["path"] == "lean" and lean["beyond_ratio"] <= 1.25, lean
    assert classic["beyond_ratio"] >= 3.0, classic
    assert lean["file_ratio"] < 0.01 and classic["file_ratio"] > 1.0


SHARDED = '''
import os, sys, torch, torch.distributed as dist
import landscape
world = int(os.environ.get("WORLD_SIZE", "1"))
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 5))
with torch.no_grad():
    for p in net.parameters():
        p.add_(0.05)
g = torch.Generator().manual_seed(1)
x, y = torch.randn(24, 8, generator=g), torch.randint(0, 5, (24,), generator=g)
if world > 1:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    dist.init_process_group("gloo")
    mesh = init_device_mesh("cpu", (world,))
    for m in net:
        if isinstance(m, torch.nn.Linear):
            fully_shard(m, mesh=mesh)
    fully_shard(net, mesh=mesh)
whole = lambda: {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).clone() for k, v in net.state_dict().items()}
before = whole()
landscape.compute(net, data=(x, y), lean=True, x="-1:1:3", y="-1:1:3", render=False, progress=False,
                  out=sys.argv[1], name="s", device="cpu")
assert all(torch.equal(before[k], v) for k, v in whole().items()), "the sharded model changed"
if world > 1:  # every rank done before the group goes: a rank leaving first can abort the other's gloo threads
    dist.barrier()
    dist.destroy_process_group()
    # torch's FSDP2 on gloo can abort at interpreter exit, after all of the above ("terminate called without an
    # active exception"; seen with a bare fully_shard + forward, no landscape code): the work is done and checked,
    # so skip the interpreter's teardown
    sys.stdout.flush(); sys.stderr.flush()
    os._exit(0)
'''


def test_a_model_sharded_with_fsdp2_under_torchrun_equals_one_process(tmp_path):
    """Two CPU ranks (gloo), each holding half of every weight's rows (Linear(32, 5)'s 5 rows split 3 + 2): each
    rank moves its rows and generates just those rows of the directions; the points are evaluated by both ranks
    together on half the data each. The file equals one process's on the unsharded model, directions and all."""
    pytest.importorskip("torch.distributed.fsdp")
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED)
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, str(script), str(tmp_path / "one")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(tmp_path / "two")], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    with h5py.File(tmp_path / "one" / "s.h5") as a, h5py.File(tmp_path / "two" / "s.h5") as b:
        np.testing.assert_allclose(b["train_loss"][()], a["train_loss"][()], rtol=1e-6)
        np.testing.assert_array_equal(b["train_acc"][()], a["train_acc"][()])
        assert b["train_done"][()].all() and "model sharded (FSDP2)" in b.attrs["device"]
        for group in ("xdirection", "ydirection"):
            np.testing.assert_array_equal(a[group]["keys"][()], b[group]["keys"][()])
            for i in a[group]["scales"]:
                np.testing.assert_array_equal(a[group]["scales"][i][()], b[group]["scales"][i][()])


LOAD = '''
import json, os, sys, torch
sys.path.insert(0, "bench")
from bigmodel import reset_peak, status
from safetensors.torch import save_file
import landscape.checkpoints as C
from landscape.models import create_model

def shard(arch, folder, parts=4):
    torch.manual_seed(0)
    sd = create_model(arch, num_classes=10).state_dict()
    keys, wm = list(sd), {}
    os.makedirs(folder)
    for i in range(parts):
        name = f"model-{i + 1:05d}-of-{parts:05d}.safetensors"
        save_file({k: sd[k].contiguous() for k in keys[i::parts]}, os.path.join(folder, name))
        wm.update({k: name for k in keys[i::parts]})
    json.dump({"metadata": {}, "weight_map": wm}, open(os.path.join(folder, "model.safetensors.index.json"), "w"))
    return sd

out = sys.argv[1]
shard("resnet20", os.path.join(out, "small"))
C.load_checkpoint(os.path.join(out, "small", "model.safetensors.index.json"))  # the code, loaded once
want = shard("resnet50", os.path.join(out, "big"))
nbytes = sum(v.numel() * v.element_size() for v in want.values())
del want
rss = status("VmRSS"); reset_peak()
net, info = C.load_checkpoint(os.path.join(out, "big", "model.safetensors.index.json"), arch="resnet50")
peak = status("VmHWM") - rss
want = shard("resnet50", os.path.join(out, "again"))
same = all(torch.equal(v, want[k]) for k, v in net.state_dict().items())
print(json.dumps({"ratio": peak / nbytes, "same": same, "arch": info["arch"]}))
'''


def test_a_sharded_safetensors_checkpoint_loads_with_one_copy_of_the_weights(tmp_path):
    """A ResNet-50 in four safetensors shards and an index: built on the meta device and given the shards'
    tensors, read straight into their own memory, so loading peaks at about the weights' bytes (the usual
    build-then-load holds two copies)."""
    pytest.importorskip("safetensors")
    script = tmp_path / "load.py"
    script.write_text(LOAD)
    r = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=ROOT), timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    assert rec["same"] and rec["arch"] == "resnet50"
    assert rec["ratio"] <= 1.25, rec
