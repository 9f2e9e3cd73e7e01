"""Everything :func:`landscape.compute` settles before the first point: the settings, the model, the data of each
split, what a batch costs, and the attributes the surface file records.

Each step is a function usable on its own (a notebook can call :func:`load_splits` to see what would be
evaluated); :func:`landscape.compute` runs them in order.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch
import torch.nn as nn

from landscape import batching
from landscape.checkpoints import load_checkpoint
from landscape.data import Data
from landscape.datasets.normalization import recorded_for
from landscape.datasource import resolve_data
from landscape.errors import LandscapeError
from landscape.losses import is_class_labels
from landscape.objectives import Objective, probe_objective, resolve_objective
from landscape.paths import ensure_writable_dir
from landscape.sampling import DEFAULT_MIN_SAMPLES
from landscape.settings import Config, Provenance, attr_names, make_config, recorded, split_names
from landscape.sharded import full_tensor

SPLIT_KEYS = ("train", "test")  # data={"train": ..., "test": ...}: recognised by exactly these keys


def make_settings(config: Config | None, data: Any, options: dict) -> Config:
    """The run's :class:`Config`: ``config`` with ``options`` and ``data`` replaced; a per-split dict of data
    sets the split."""
    cfg = make_config(config, **options)
    if data is not None:
        cfg = cfg.replace(data=data)
    if is_split_dict(cfg.data):
        asked = options.get("split", config.split if config is not None and config.split != "train" else None)
        cfg = cfg.replace(split=_dict_split(cfg.data, asked))
    if cfg.dir_type is None:  # toward other models, BN statistics move too: alpha = 1 is then the second model itself
        cfg = cfg.replace(dir_type="states" if cfg.ckpt2 is not None or cfg.ckpt3 is not None else "weights")
    return cfg


def is_split_dict(data: Any) -> bool:
    """``{"train": ..., "test": ...}``, as opposed to a dict batch (``{"input_ids": tensor, ...}``): a key
    ``train`` or ``test`` whose value is not a tensor (:func:`_dict_split` then checks the keys)."""
    return isinstance(data, dict) and any(k in data and not isinstance(data[k], torch.Tensor) for k in SPLIT_KEYS)


def _dict_split(data: dict, asked: str | None) -> str:
    names = [k for k in SPLIT_KEYS if k in data]
    if len(names) != len(data):
        raise LandscapeError(f"data given per split takes the keys 'train' and/or 'test'; got {sorted(map(str, data))}")
    split = ",".join(names)
    if asked is not None and asked != split:
        raise LandscapeError(f"split={asked!r} but the data is given for {split!r}; drop split= (the data's keys "
                             "say it)")
    return split


def resolve_model(model: Any, cfg: Config) -> tuple[nn.Module, dict]:
    """An ``nn.Module``, a checkpoint path or a HuggingFace folder -> ``(module, info)``; info holds ``arch``,
    ``path``, ``sha256``, ``stem`` (the default file name), ``own`` (a network of the user's own rather than a
    built-in architecture) and, for checkpoints, ``in_channels``/``num_classes``."""
    from landscape.models.hf import PREFIX, is_hf_folder, load_hf_model

    spec = cfg.model_spec or ""
    if spec.startswith(PREFIX):
        if model is not None and not (isinstance(model, (str, os.PathLike)) and
                                      os.path.abspath(os.fspath(model)) == os.path.abspath(spec[len(PREFIX):])):
            raise LandscapeError(f"--model {spec} holds the weights; drop --ckpt (or pass the same folder)")
        net, info = load_hf_model(spec[len(PREFIX):])
        return net, dict(info, own=True)
    if model is None:
        raise LandscapeError("compute() needs a model: an nn.Module, a checkpoint path or a HuggingFace folder")
    if isinstance(model, nn.Module):
        folder = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
        return model, {"arch": str(getattr(model, "arch", type(model).__name__)), "path": "",
                       "sha256": state_sha256(model), "stem": type(model).__name__.lower(), "own": True,
                       "tokenizer": folder if os.path.isdir(str(folder)) else None}
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if is_hf_folder(path) and not cfg.model_spec:
            net, info = load_hf_model(path)
            return net, dict(info, own=True)
        net, info = load_checkpoint(path, arch=cfg.arch, trust=cfg.trust_checkpoint, model=cfg.model_spec)
        info = dict(info, stem=os.path.splitext(os.path.basename(path.rstrip("/")))[0] or "surface")
        return net, info
    raise LandscapeError(f"model must be an nn.Module, a checkpoint path or a HuggingFace folder; got "
                         f"{type(model).__name__}")


def state_sha256(model: nn.Module) -> str:
    """SHA-256 of a module's state (names, shapes, dtypes and values): what identifies an in-memory model in the
    surface file, as the checkpoint file's hash does for a checkpoint."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        t = full_tensor(v.detach()).cpu().contiguous()  # a sharded model's whole tensor (a collective)
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        if t.numel():  # the tensor's own bytes, no copy (a large model's biggest tensor is a third of it)
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def default_name(stem: str, two_d: bool) -> str:
    """``resnet56`` -> ``resnet56`` (2D) / ``resnet56_1d`` (1D)."""
    return stem if two_d else f"{stem}_1d"


def surface_path(cfg: Config, info: dict, two_d: bool) -> str:
    """``<out>/<name>.h5``, its folder made writable first."""
    ensure_writable_dir(cfg.out)
    return os.path.join(cfg.out, f"{cfg.name or default_name(info['stem'], two_d)}.h5")


def model_dtype(net: nn.Module) -> torch.dtype | None:
    """The floating dtype of all the model's floating parameters, or ``None`` (none, or several)."""
    dtypes = {p.dtype for p in net.parameters() if p.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


OWN_PRECISION = {torch.float64: "fp64", torch.bfloat16: "bf16", torch.float16: "fp16"}


def effective_precision(precision: str, net: nn.Module) -> str:
    """What the surface is computed in, as recorded: ``precision``, or the weights' own type for a float64, bf16 or
    fp16 model (autocast and TF32 do not change what such a model computes in, so asking for another precision is
    an error rather than a wrong record; bf16 on a bf16 model is what it does)."""
    own = OWN_PRECISION.get(model_dtype(net))
    if own is None or precision in ("fp32", own):
        return own or precision
    raise LandscapeError(f"precision={precision!r} does not apply to a model whose weights are "
                         f"{str(model_dtype(net))[6:]} (it computes in {own} whatever precision says); drop "
                         f"precision= (recorded as {own}), or convert the model (e.g. model.float())")


def load_splits(cfg: Config, info: dict, net: nn.Module, device: torch.device) -> list[Data]:
    """The data of every split (``cfg.split``), checked against the model, float inputs in the model's dtype."""
    splits = split_names(cfg.split)
    if len(splits) > 1 and not isinstance(cfg.data, str) and not is_split_dict(cfg.data):
        raise LandscapeError(f"split={cfg.split!r} needs a data spec string (e.g. 'cifar10:DIR') to load each "
                             "split from, or data={'train': ..., 'test': ...}")
    if len(splits) > 1 and isinstance(cfg.data, str) and cfg.data.split(":")[0].lower() in ("text", "jsonl"):
        raise LandscapeError(f"--data {cfg.data} is one set of sequences, not a train and a test split; evaluate "
                             "each file in its own run (--split train)")
    recorded_norm = recorded_for(info)  # a network of the user's own that records none must say which
    text = {"tokenizer_dir": info.get("tokenizer"), "seq_len": cfg.seq_len, "text_key": cfg.text_key}
    dtype = model_dtype(net)
    datas = []
    for sp in splits:
        d = resolve_data(cfg.data[sp] if is_split_dict(cfg.data) else cfg.data, split=sp, samples=cfg.samples,
                         device=device, in_channels=info.get("in_channels"), image_size=cfg.image_size,
                         normalization=cfg.normalization, recorded_normalization=recorded_norm, text=text)
        _check_data(d, info)
        datas.append(_in_dtype(d, dtype))
    return datas


def _in_dtype(d: Data, dtype: torch.dtype | None) -> Data:
    """Floating inputs in the model's floating dtype (float32 data for a float64 model is cast up exactly)."""
    if dtype is None or all(t.dtype == dtype for t in batching.leaves(d.x) if t.is_floating_point()):
        return d
    x = batching.tree_map(lambda t: t.to(dtype) if t.is_floating_point() else t, d.x)
    return d._replace(x=x)


def _check_data(ds: Data, info: dict) -> None:
    in_ch, n_cls = info.get("in_channels"), info.get("num_classes")
    if in_ch is not None and ds.images and ds.x.shape[1] != in_ch:
        raise LandscapeError(f"the data has {ds.x.shape[1]} channels but the model expects {in_ch}; use matching "
                             "--data (digits is 1-channel, cifar10/imagefolder are 3-channel)")
    y = ds.targets
    if n_cls is not None and is_class_labels(y) and ((ds.num_classes or 0) > n_cls or int(y.max()) >= n_cls):
        raise LandscapeError(f"the data has {ds.num_classes} classes but the model's classifier has {n_cls}; use "
                             "the data the model was trained on")


def objective_for(cfg: Config, net: nn.Module, data: Data) -> Objective:
    """What a batch costs (``cfg.loss`` / ``cfg.objective``), probed on a few samples of ``data``."""
    objective = resolve_objective(cfg.loss, cfg.objective)
    probe_objective(net, data, objective)
    return objective


def surface_attributes(cfg: Config, info: dict, datas: list[Data], objective: Objective, directions: str,
                       device: str, precision: str) -> dict:
    """The attributes the surface file records (:mod:`landscape.settings`), with the lists of those that define
    the surface (``identity_attrs``) and those the page shows (``shown_attrs``)."""
    ds = datas[0]
    prov = Provenance(arch=info["arch"], ckpt=info["path"], ckpt_sha256=info["sha256"], dataset=ds.name,
                      n_samples=len(ds), population=ds.population or len(ds), input_normalization=_norm_str(ds),
                      directions=directions, torch_version=torch.__version__, device=device)
    attrs = recorded(cfg, prov)
    attrs["loss"] = objective.name
    attrs["precision"] = precision
    # --min-samples means something only with --tolerance: record what was used, so a resume must match it
    attrs["min_samples"] = (cfg.min_samples or DEFAULT_MIN_SAMPLES) if cfg.adaptive else None
    attrs["identity_attrs"] = attr_names(Provenance, type(cfg), flag="identity")
    attrs["shown_attrs"] = attr_names(Provenance, type(cfg), flag="shown") + ["created"]
    if objective.weighting != "mean over samples":  # how the mean is taken, when it is not the plain one
        attrs["loss_weighting"] = objective.weighting
        attrs["shown_attrs"].insert(attrs["shown_attrs"].index("loss") + 1, "loss_weighting")
    attrs["config"] = cfg.to_json()
    for sp, d in zip(split_names(cfg.split)[1:], datas[1:]):  # the other splits' sample counts
        attrs[f"{sp}_n_samples"] = len(d)
        attrs["shown_attrs"].insert(attrs["shown_attrs"].index("n_samples") + 1, f"{sp}_n_samples")
    return attrs


def _norm_str(ds: Data) -> str:
    """The normalization applied to the inputs, ``MEAN/STD`` (empty for data passed as tensors)."""
    from landscape.datasets.normalization import describe

    return describe(ds.mean, ds.std) if ds.mean and ds.std else ""
