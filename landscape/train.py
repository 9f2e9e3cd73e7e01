"""Training that produces checkpoints to look at: ``python -m landscape.train --arch resnet56 --data digits``.

The recipe of He et al. 2015 for CIFAR: SGD with momentum 0.9, weight decay 1e-4, learning rate 0.1 divided by
10 at 50 % and 75 % of the epochs, batch 128, random crop with padding (4 px on 32x32; 1 px on 8x8 digits) and
horizontal flips (not for digits, whose meaning flips change). Data stays on the device; augmentation runs
there, batched, from a seeded generator, so a run is deterministic on the CPU and resumable bit-for-bit from
its last snapshot (model, optimizer and generator state are all saved).
"""

from __future__ import annotations

import os
import sys
import time

import torch
import torch.nn.functional as F

from landscape.checkpoints import read_checkpoint_file, load_into, save_checkpoint
from landscape.cli import Parser, run
from landscape.data import load_data
from landscape.errors import LandscapeError
from landscape.evaluate import default_batch_size, loss_and_accuracy, resolve_device
from landscape.models import canonical_name, create_model
from landscape.paths import ensure_writable_dir, list_snapshots
from landscape.settings import DATA_KINDS, check_seed


def lr_at(epoch: int, epochs: int, lr: float) -> float:
    """Step schedule of He et al.: ``lr`` until 50 % of the epochs, ``lr/10`` until 75 %, then ``lr/100``."""
    if epoch < epochs // 2:
        return lr
    if epoch < (3 * epochs) // 4:
        return lr / 10
    return lr / 100


def augment(x: torch.Tensor, pad: int, flip: bool, fill: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random crop after ``pad``-pixel padding (with the normalized value of black) and optional h-flip."""
    b, c, h, w = x.shape
    if pad > 0:
        xp = fill.view(1, c, 1, 1).expand(b, c, h + 2 * pad, w + 2 * pad).clone()
        xp[:, :, pad:pad + h, pad:pad + w] = x
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=g.device)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=g, device=g.device)
        rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (b, h, 1)
        cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (b, 1, w)
        x = xp[torch.arange(b, device=x.device)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if flip:
        m = torch.rand(b, generator=g, device=g.device) < 0.5
        x = torch.where(m[:, None, None, None], x.flip(3), x)
    return x.contiguous()


def default_run_dir(arch: str, data: str) -> str:
    """``runs/<arch>_<data kind>``, e.g. ``runs/resnet56_digits``."""
    return os.path.join("runs", f"{canonical_name(arch)}_{data.split(':')[0]}")


def train(arch: str = "resnet56", data: str = "digits", epochs: int = 30, batch_size: int = 128, lr: float = 0.1,
          weight_decay: float = 1e-4, seed: int = 0, save_every: int = 0, out: str | None = None,
          resume: bool = False, device: str = "auto", progress: bool = True, amp: bool | None = None,
          record_every: int = 0, record_grid: str = "-1:1:11", record_samples: int | None = 512,
          record_bn: str = "eval") -> dict:
    """Train ``arch`` on ``data`` and write ``out/final.pt`` (+ ``out/epoch_NNN.pt`` snapshots).

    Args:
        save_every: snapshot every N epochs (0: none); ``epoch_000.pt`` is the initialization.
        out: the run folder (default ``runs/<arch>_<data kind>``, as the CLI).
        resume: continue from the newest snapshot in ``out``.
        amp: bfloat16 autocast (default: on for CUDA, off on the CPU).
        record_every: record the landscape every N epochs (and at the start) into ``out/landscape.h5``
            (:class:`landscape.movie.Recorder`; 0: none), on ``record_grid`` (both axes) and the first
            ``record_samples`` training images; drawn by ``python -m landscape.render --animate``.
        record_bn: the frames' BatchNorm statistics: ``eval`` (the running statistics) or ``recompute`` (re-estimated
            on the frame's images at every point; early epochs otherwise show mostly the running statistics' lag).

    Returns:
        The history: per epoch ``train_loss``, ``train_err``, ``test_loss``, ``test_err`` (percent), ``lr``,
        ``seconds`` (the whole epoch), ``train_seconds`` (its training steps alone: images/s = samples / it).
    """
    if epochs < 1 or batch_size < 1 or lr <= 0 or weight_decay < 0 or save_every < 0:
        raise LandscapeError("--epochs, --batch-size and --lr must be positive, --weight-decay and --save-every "
                             f"non-negative; got epochs={epochs} batch_size={batch_size} lr={lr} "
                             f"weight_decay={weight_decay} save_every={save_every}")
    dev = resolve_device(device)
    amp = (dev.type == "cuda") if amp is None else amp
    check_seed(seed)
    torch.manual_seed(seed)
    if dev.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    probe = create_model(arch)  # fails early on an unknown name
    del probe
    tr = load_data(data, "train", device=dev)
    te = load_data(data, "test", device=dev)
    in_ch = tr.x.shape[1]
    model = create_model(arch, num_classes=tr.num_classes, in_channels=in_ch).to(dev)
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay)
    g = torch.Generator(device=dev).manual_seed(seed)
    small = tr.x.shape[-1] <= 16
    pad, flip = (1, False) if small else (4, True)
    eval_batch = default_batch_size(dev, tuple(tr.x.shape[1:]))
    fill = ((0.0 - torch.tensor(tr.mean)) / torch.tensor(tr.std)).to(dev, torch.float32)
    history: dict[str, list] = {k: [] for k in ("train_loss", "train_err", "test_loss", "test_err", "lr", "seconds",
                                                "train_seconds")}
    meta = {"dataset": tr.name, "normalization": tr.normalization,
            "args": {"arch": canonical_name(arch), "data": data, "epochs": epochs, "batch_size": batch_size,
                     "lr": lr, "weight_decay": weight_decay, "seed": seed, "augment": {"pad": pad, "flip": flip}}}
    start = 0
    out = out or default_run_dir(arch, data)
    ensure_writable_dir(out)
    if resume:
        snaps = list_snapshots(out)
        if not snaps:
            raise LandscapeError(f"--resume: no epoch_*.pt snapshot in {out!r}; run without --resume first")
        start, path = snaps[-1]
        ck = read_checkpoint_file(path, trust=False)
        load_into(model, ck["state_dict"], source=path)
        if "optimizer" not in ck or "rng" not in ck:
            raise LandscapeError(f"{path!r} has no optimizer/generator state, so it cannot be resumed exactly")
        opt.load_state_dict(ck["optimizer"])
        g.set_state(ck["rng"].cpu() if dev.type == "cpu" else ck["rng"])
        history = {k: list(v) for k, v in ck["history"].items()}
        history.setdefault("train_seconds", [])  # histories written before it was recorded
    elif save_every:
        _snapshot(out, 0, model, arch, opt, g, history, meta)

    recorder = None
    if record_every:
        from landscape.movie import Recorder

        recorder = Recorder(model, tr, os.path.join(out, "landscape.h5"), record_grid, record_grid, record_samples,
                            seed=seed + 123, bn=record_bn, unit="epoch", verbose=False)
        history.setdefault("landscape_seconds", [])
        if start == 0 and 0 not in recorder.steps():
            history["landscape_seconds"].append(recorder.record(0))
    from tqdm.auto import tqdm

    bar = tqdm(range(start, epochs), initial=start, total=epochs, desc=f"train {canonical_name(arch)}",
               unit="epoch", disable=not progress, dynamic_ncols=True)
    n = len(tr)
    for epoch in bar:
        t0 = time.perf_counter()
        cur = lr_at(epoch, epochs, lr)
        for group in opt.param_groups:
            group["lr"] = cur
        model.train()
        perm = torch.randperm(n, generator=g, device=dev)
        tot_loss = torch.zeros((), device=dev, dtype=torch.float64)
        tot_wrong = torch.zeros((), device=dev, dtype=torch.int64)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            x = augment(tr.x[idx], pad, flip, fill, g)
            y = tr.y[idx]
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += loss.detach().double() * len(idx)
            tot_wrong += (logits.argmax(1) != y).sum()
        if dev.type == "cuda":
            torch.cuda.synchronize()  # the steps were queued asynchronously; time them, not their launch
        train_seconds = time.perf_counter() - t0
        model.eval()
        test_loss, test_acc = loss_and_accuracy(model, te, eval_batch)
        history["train_loss"].append(float(tot_loss) / n)
        history["train_err"].append(100.0 * float(tot_wrong) / n)
        history["test_loss"].append(test_loss)
        history["test_err"].append(100.0 - test_acc)
        history["lr"].append(cur)
        history["seconds"].append(time.perf_counter() - t0)
        history["train_seconds"].append(train_seconds)
        bar.set_postfix(img_s=f"{n / train_seconds:,.0f}", loss=f"{history['train_loss'][-1]:.3f}",
                        train_err=f"{history['train_err'][-1]:.1f}%", test_err=f"{history['test_err'][-1]:.1f}%")
        if recorder is not None and (epoch + 1) % record_every == 0:
            took = recorder.record(epoch + 1)  # after the snapshot's epoch, before it is saved: resumes line up
            if took is not None:
                history["landscape_seconds"].append(took)
        if save_every and (epoch + 1) % save_every == 0:
            _snapshot(out, epoch + 1, model, arch, opt, g, history, meta)
    bar.close()
    train_loss, train_acc = loss_and_accuracy(model.eval(), tr, eval_batch)
    save_checkpoint(os.path.join(out, "final.pt"), model, arch, epoch=epochs, history=history,
                    acc=100.0 - history["test_err"][-1], train_acc=train_acc, test_acc=100.0 - history["test_err"][-1],
                    **meta)
    history["final_train_acc"] = train_acc
    history["samples"] = n
    return history


def _snapshot(out, epoch, model, arch, opt, g, history, meta) -> None:
    save_checkpoint(os.path.join(out, f"epoch_{epoch:03d}.pt"), model, arch, epoch=epoch, history=history,
                    optimizer=opt.state_dict(), rng=g.get_state(), **meta)


def build_parser() -> Parser:
    p = Parser(prog="python -m landscape.train", description="Train a registry model (He et al. recipe) and save "
               "checkpoints for landscape.plot.")
    p.add_argument("--arch", default="resnet56", help="registry name, e.g. resnet56, plain56, resnet20")
    p.add_argument("--data", default="digits", help=DATA_KINDS)
    p.add_argument("--epochs", type=int, default=30, help="default 30 (He et al. CIFAR: 164)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="initial learning rate (/10 at 50%% and 75%%)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-every", type=int, default=0, help="snapshot every N epochs (0: only final.pt)")
    p.add_argument("--out", default=None, help="run folder (default runs/<arch>_<data>)")
    p.add_argument("--resume", action="store_true", help="continue from the newest snapshot in --out")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--record-every", type=int, default=0, metavar="N", help="record the landscape every N epochs "
                   "into <out>/landscape.h5 (python -m landscape.render --animate draws it); 0: never")
    p.add_argument("--record-grid", default="-1:1:11", metavar="MIN:MAX:NUM", help="its grid, both axes (default "
                   "-1:1:11)")
    p.add_argument("--record-samples", type=int, default=512, metavar="N", help="training images per frame "
                   "(default 512)")
    p.add_argument("--record-bn", default="eval", choices=("eval", "recompute"), help="the frames' BatchNorm "
                   "statistics: eval (running, as compute's default) or recompute (re-estimated at every point; "
                   "early epochs otherwise show mostly the running statistics' lag)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    out = a.out or default_run_dir(a.arch, a.data)
    h = train(a.arch, a.data, a.epochs, a.batch_size, a.lr, a.weight_decay, a.seed, a.save_every, out, a.resume,
              a.device, not a.quiet, record_every=a.record_every, record_grid=a.record_grid,
              record_samples=a.record_samples, record_bn=a.record_bn)
    print(f"{os.path.join(out, 'final.pt')}: train accuracy {h['final_train_acc']:.2f}%, test accuracy "
          f"{100 - h['test_err'][-1]:.2f}% after {len(h['test_err'])} epochs ({sum(h['seconds']):.0f} s)")
    if h.get("landscape_seconds"):
        t = h["landscape_seconds"]
        print(f"landscape: {len(t)} frames in {os.path.join(out, 'landscape.h5')}, {sum(t) / len(t):.1f} s each "
              f"({sum(t):.0f} s in all); draw them: python -m landscape.render --animate "
              f"{os.path.join(out, 'landscape.h5')}")
    if h["train_seconds"]:
        steps = h["train_seconds"][1:] or h["train_seconds"]  # the first epoch includes warm-up (cuDNN autotuning)
        label = "the epochs after the first (warm-up)" if len(steps) < len(h["train_seconds"]) else "one epoch"
        print(f"training throughput: {h['samples'] * len(steps) / sum(steps):,.0f} images/s (training steps of "
              f"{label})")
    return 0


if __name__ == "__main__":
    sys.exit(run(main, prog="landscape.train", resume_flag="--resume"))
