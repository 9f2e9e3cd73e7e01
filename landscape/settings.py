"""Every setting of a surface, written down once (nanoGPT-style dataclasses, saved with the result).

:class:`Config` holds what a user chooses; the CLI's flags (:func:`add_arguments`), the keywords of
:func:`landscape.compute` and their validation are all generated from its fields. :class:`Provenance` holds
what the run finds out (the architecture, the data set, ...). Each field's metadata says where it goes:

* ``attr``: the surface file records it under this attribute name;
* ``identity``: it defines the surface's values, so resuming with another value is an error;
* ``shown``: the HTML page's settings line shows it.

The surface file also records which attributes were identity and shown (``identity_attrs``, ``shown_attrs``),
so the resume check and the renderer read them from the file and a new setting needs no other edit.

Torch-free on purpose: the renderer imports it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field, fields
from typing import Any

from landscape.errors import LandscapeError
from landscape.paths import check_name
from landscape.sampling import DEFAULT_MIN_SAMPLES

NORMS = ("filter", "layer", "weight", "none")
IGNORES = ("biasbn", "none")
DIR_TYPES = ("weights", "states")
PRECISIONS = ("fp32", "tf32", "bf16")
BN_MODES = ("eval", "recompute")
# the --data kinds, for every command's help (landscape.datasets loads them)
DATA_KINDS = ("digits (default) | cifar10:DIR | cifar100:DIR | mnist:DIR | fashion-mnist:DIR | imagefolder:DIR | "
              "synthetic[:N] | text:FILE | jsonl:FILE (with --model hf:DIR)")
SPLITS = ("train", "test", "train,test")  # train,test: both at every point, one file (the first is the main one)
LOSSES = ("cross_entropy", "mse", "nll")
GPU_GRID = "-1:1:51"  # the authors' 51x51, ~3 min for 10,000 CIFAR images on an H100 in bf16 (BENCHMARKS.md)
CPU_GRID = "-1:1:41"  # with --refine (the CPU default): the digits ResNet-56 in about 70 s on 2 cores, all included
LEAN_ELEMENTS = 100_000_000  # moving elements from which the lean path is the default (landscape.evaluate.inplace)
ONE_D_GRID = "-1:1:51"  # 51 points of a 1D curve take ~10 s on 2 CPU cores for the digits ResNet-56


def split_names(split: str) -> list[str]:
    """``"train,test"`` -> ``["train", "test"]``: the splits a surface holds, its main one first."""
    return [s.strip() for s in str(split or "train").split(",") if s.strip()] or ["train"]


def setting(default: Any, help: str, *, flag: str | None = None, choices: tuple | None = None,
            attr: str | None = None, identity: bool = False, shown: bool = False, group: str = "evaluation",
            cli: bool = True, metavar: str | None = None) -> Any:
    """A :class:`Config` field with what the CLI, the surface file and the HTML page need to know of it.

    Args:
        default: the default value.
        help: the CLI's help text (also the field's documentation).
        flag: the CLI flag (default ``--`` + the name with ``-`` for ``_``).
        choices: the valid values (checked for the CLI and for Python callers alike).
        attr: the surface-file attribute that records it (``None``: not recorded).
        identity: the value defines the surface (resume must match).
        shown: the HTML settings line shows it.
        group: the CLI help group.
        cli: whether the CLI has a flag for it.
    """
    meta = dict(help=help, flag=flag, choices=choices, attr=attr, identity=identity, shown=shown, group=group,
                cli=cli, metavar=metavar)
    return field(default=default, metadata=meta)


@dataclass
class Config:
    """What a user chooses for one surface. Every field is a ``python -m landscape.plot`` flag and a keyword of
    :func:`landscape.compute`."""

    # the model
    arch: str | None = setting(None, "architecture for a checkpoint that does not record it, e.g. resnet56, "
                               "plain56 / resnet56_noshort, resnet50", group="model")
    model_spec: str | None = setting(None, "any other network: torchvision:NAME, timm:NAME, or MODULE:FACTORY (an "
                                     "import path or a .py file) returning the untrained nn.Module; the checkpoint's "
                                     "weights are loaded into it; or hf:DIR, a local HuggingFace model folder "
                                     "(config and safetensors, weights included: --ckpt may be omitted)",
                                     flag="--model", group="model", metavar="SPEC")
    trust_checkpoint: bool = setting(False, "allow checkpoints that need code execution to load (only for files "
                                     "you trust)", group="model")
    # the data
    data: str = setting("digits", DATA_KINDS + "; from Python also tensors, a Dataset or a DataLoader (or a "
                        "dict of them per split)", group="data")
    split: str = setting("train", "data split (default train, as in Li et al.); train,test evaluates both at every "
                         "point into one file", choices=SPLITS, attr="split", metavar="|".join(SPLITS),
                         identity=True, shown=True, group="data")
    samples: int | None = setting(None, "evaluate on the first N samples (default: all)", group="data",
                                  metavar="N")
    normalization: str = setting("default", "input normalization: default (the checkpoint's recorded one, else the "
                                 "data set's usual one for built-in architectures; your own network must say), "
                                 "dataset (the data set's usual one), reference (the reference code's CIFAR "
                                 "constants, for its checkpoints), none, or MEAN/STD (e.g. 0.5,0.5,0.5/0.5,0.5,0.5)",
                                 attr="normalization", identity=True, group="data", metavar="CHOICE")
    image_size: int | None = setting(None, "imagefolder: resize the shorter side to N and centre-crop N x N "
                                     "(default: the images' own size, which they must share)", group="data",
                                     metavar="N")
    seq_len: int | None = setting(None, "text:/jsonl: data: tokens per sequence (the text is tokenized with the "
                                  "--model hf:DIR folder's tokenizer and cut into blocks of N; default 128)",
                                  attr="seq_len", identity=True, shown=True, group="data", metavar="N")
    text_key: str = setting("text", "jsonl: data: the field holding each record's text (default text)",
                            group="data", metavar="KEY")
    # the grid
    x: str | None = setting(None, f"alpha grid MIN:MAX:NUM (default {GPU_GRID} on a GPU, {CPU_GRID} on the CPU; "
                            "with --1d: -1:1:51; with --trajectory: covering the path)", group="grid",
                            metavar="MIN:MAX:NUM")
    y: str | None = setting(None, "beta grid MIN:MAX:NUM (default: like x; with --trajectory: covering the path)",
                            group="grid", metavar="MIN:MAX:NUM")
    one_d: bool = setting(False, "a 1D curve along x instead of the 2D surface", flag="--1d", group="grid")
    # the directions
    norm: str = setting("filter", "direction normalization (default filter)", choices=NORMS, attr="norm",
                        identity=True, shown=True, group="directions")
    ignore: str = setting("biasbn", "biasbn (default): biases and BN parameters are not perturbed",
                          choices=IGNORES, attr="ignore", identity=True, shown=True, group="directions")
    dir_type: str | None = setting(None, "weights (parameters; the default for random and file directions) or "
                                   "states (also BN running statistics; the default with --ckpt2/--ckpt3, so that "
                                   "alpha = 1 is the second model itself)",
                                   choices=DIR_TYPES, attr="dir_type", identity=True, shown=True, group="directions")
    seed: int = setting(123, "seed of the random directions (default 123)", attr="seed", identity=True, shown=True,
                        group="directions")
    directions: str | None = setting(None, "read directions from this HDF5 file (ours or the reference's), or "
                                     "'hessian': the top Hessian eigenvectors at theta* (normalized by --norm; "
                                     "none keeps them unit)", group="directions", metavar="FILE|hessian")
    ckpt2: str | None = setting(None, "x direction = ckpt2 - ckpt (1D interpolation)", group="directions")
    ckpt3: str | None = setting(None, "y direction = ckpt3 - ckpt (plane through three models)",
                                group="directions")
    trajectory: str | None = setting(None, "PCA directions of the run's snapshots (epoch_*.pt, or any naming with "
                                     "a step: step100.pt, ...); the optimizer's path is drawn", group="directions",
                                     metavar="RUN_DIR")
    params: str | None = setting(None, "move only these tensors: comma-separated globs over their names "
                                 "('*attn*', 'layer3.*'), '!GLOB' to leave some out ('!*embed*': all but the "
                                 "embeddings), or re:REGEX; the rest stay at theta* (default: all)", attr="params",
                                 identity=True, shown=True, group="directions", metavar="PATTERN")
    lean: bool | None = setting(None, "the lean path for large models: perturb the model in place (one copy of the "
                                "moving weights, no copy of the model) and regenerate random directions from "
                                "recorded seeds instead of storing them (default: when the moving tensors hold "
                                f"{LEAN_ELEMENTS // 1_000_000} M elements or more)", group="directions")
    save_directions: bool = setting(False, "also write the directions as tensors in the reference's direction-file "
                                    "format, <out>/<name>_directions.h5 (the lean path records only seeds)",
                                    group="directions")
    # the evaluation
    loss: str | None = setting(None, "cross_entropy, mse (the reference's: softmax vs one-hot; plain MSE for float "
                               "targets) or nll; from Python also a callable fn(output, target) (default: the "
                               "model's own loss when its output carries one, e.g. a HuggingFace model given "
                               "labels; else cross_entropy, token-averaged for sequence outputs)", choices=LOSSES,
                               attr="loss", identity=True, shown=True)
    objective: str | None = setting(None, "a loss computed from the model and the batch, for objectives without "
                                    "targets (PINN, autoencoder, contrastive): MODULE:FN (an import path or a .py "
                                    "file) with FN(model, batch) returning per-sample losses or their mean; from "
                                    "Python the callable itself (the file records it as its loss)",
                                    metavar="MODULE:FN")
    precision: str = setting("fp32", "fp32 (default, strict), tf32 (GPU) or bf16 (autocast)", choices=PRECISIONS,
                             attr="precision", identity=True, shown=True)
    bn: str = setting("eval", "eval: BN running statistics (default, as the reference); recompute: per point",
                      choices=BN_MODES, attr="bn_mode", identity=True, shown=True)
    batch_size: int | None = setting(None, "samples per forward pass (default by device and input size: CPU 512 "
                                     "for 8x8, 128 for 32x32; GPU up to 4,096 32x32 images, capped by memory)")
    points_per_step: int | None = setting(None, "grid points evaluated together (vmap engine); default 1, on a "
                                          "GPU more when the data is smaller than one batch")
    fold_bn: bool | None = setting(None, "fold eval-mode BatchNorm into the convolutions, per point (same numbers "
                                   "to float rounding; default: on a GPU)")
    compile: bool = setting(False, "torch.compile the forward pass once (pays from ~1,500 points on a GPU, "
                            "~1,000 on 2 CPU cores)")
    device: str = setting("auto", "auto (default) | cpu | cuda | cuda:N")
    tolerance: float | None = setting(None, "adaptive sampling: evaluate each point on growing chunks of one "
                                      "seeded permutation of the data and stop once its 95 % interval is within "
                                      "+-T of its mean loss (loss units) or above the figure's cap (default: all "
                                      "the data for every point)", attr="tolerance", identity=True, shown=True,
                                      metavar="T")
    rtol: float | None = setting(None, "adaptive sampling relative to each point's loss: stop once the 95 % "
                                 "interval is within +-(T + R*|mean loss|), as numpy.allclose; --rtol 0.02 alone: "
                                 "within 2 % of the loss (default: off)", attr="rtol", identity=True, shown=True,
                                 metavar="R")
    min_samples: int | None = setting(None, "with --tolerance/--rtol: samples a point uses before it may stop "
                                      f"(default {DEFAULT_MIN_SAMPLES})", attr="min_samples", identity=True, shown=True,
                                      metavar="N")
    refine: bool | None = setting(None, "adaptive grid refinement: evaluate a coarse level of the grid, then only "
                                  "the cells whose values the coarser level cannot predict within the tolerance "
                                  "(--tolerance T and/or --rtol R; default rtol 0.02); the rest is predicted (cubic, "
                                  "in log space for the loss) and marked as such in {split}_evaluated (default: on "
                                  f"for the CPU's default {CPU_GRID} grid, off otherwise)", attr="refine",
                                  identity=True, shown=True, group="grid")
    eigen: bool = setting(False, "also the Hessian's largest and smallest eigenvalues at every point (max_eig, "
                          "min_eig; drawn as Li et al.'s |min/max| convexity map)", attr="eigen", identity=True,
                          shown=True)
    eigen_points: int | None = setting(None, "with --eigen: grid points whose eigen problems run together (one "
                                       "vmap-batched Hessian-vector product per Lanczos step); default 1, one "
                                       "after another (the batched path's GPU speed is not yet measured)",
                                       metavar="K")
    # the output
    out: str = setting("plots", "output folder (default plots/)", group="output")
    name: str | None = setting(None, "file stem (default: the checkpoint's or model's, _1d for 1D)",
                               group="output")
    formats: str = setting("png,html", "any of png,pdf,svg,html,vtp (default png,html)", group="output")
    render: bool = setting(True, "draw the figures after computing", flag="--render", group="output")
    progress: bool = setting(True, "show a progress bar", flag="--progress", group="output")

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and isinstance(value, str) and value not in choices:
                raise LandscapeError(f"unknown {f.name} {value!r}; valid: {', '.join(choices)}")
        for f in ("samples", "batch_size", "points_per_step", "image_size", "eigen_points", "min_samples", "seq_len"):
            v = getattr(self, f)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise LandscapeError(f"{f} must be a positive integer; got {v!r}")
        check_seed(self.seed)
        if self.name is not None:
            check_name(self.name)
        for axis in ("x", "y"):
            if getattr(self, axis) is not None and not str(getattr(self, axis)).strip():
                raise LandscapeError(f"--{axis} is empty; give MIN:MAX:NUM (e.g. --{axis} -1:1:51) or leave the flag "
                                     "out for the default grid")
        t = self.tolerance
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t < float("inf")):
            raise LandscapeError(f"tolerance must be a positive number of loss units, e.g. 0.01; got {t!r}")
        r = self.rtol
        if r is not None and (isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < float("inf")):
            raise LandscapeError(f"rtol must be a positive fraction of the loss, e.g. 0.02 for 2%; got {r!r}")

    @property
    def adaptive(self) -> bool:
        """Points are sampled adaptively (``--tolerance`` or ``--rtol``)."""
        return self.tolerance is not None or self.rtol is not None

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """All fields as JSON (a callable loss or a data object by its name): saved in the surface file."""
        return json.dumps({f.name: _plain(getattr(self, f.name)) for f in fields(self)}, sort_keys=True)


SEED_RANGE = (-2**63, 2**64 - 1)  # what torch.manual_seed and the 64-bit generators take


def check_seed(seed: Any, flag: str = "--seed") -> int:
    """``seed`` if it is an integer the generators take, else a one-line error (not an overflow traceback)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        shown = repr(seed) if len(repr(seed)) <= 40 else repr(seed)[:40] + "..."
        raise LandscapeError(f"{flag} {shown} is not an integer from -2**63 to 2**64-1; pass e.g. {flag} 123")
    return seed


@dataclass
class Provenance:
    """What a run finds out and records, besides the user's choices."""

    arch: str = setting("", "", attr="arch", identity=True, shown=True, cli=False)
    ckpt: str = setting("", "", attr="ckpt", cli=False)
    ckpt_sha256: str = setting("", "", attr="ckpt_sha256", identity=True, cli=False)
    dataset: str = setting("", "", attr="dataset", identity=True, shown=True, cli=False)
    n_samples: int = setting(0, "", attr="n_samples", identity=True, shown=True, cli=False)
    input_normalization: str = setting("", "", attr="input_normalization", cli=False)  # MEAN/STD as applied
    # the size of the data set the samples come from (> n_samples under --samples): the standard errors'
    # finite-population correction (landscape.sampling)
    population: int = setting(0, "", attr="population", cli=False)
    directions: str = setting("random", "", attr="directions", identity=True, shown=True, cli=False)
    torch_version: str = setting("", "", attr="torch_version", shown=True, cli=False)
    device: str = setting("", "", attr="device", shown=True, cli=False)


def make_config(config: Config | None = None, **options: Any) -> Config:
    """``config`` (default: the defaults) with ``options`` replaced; an unknown name is a one-line error."""
    config = config if config is not None else Config()
    names = {f.name for f in fields(config)}
    bad = sorted(set(options) - names)
    if bad:
        raise LandscapeError(f"unknown setting(s) {', '.join(bad)}; valid: {', '.join(sorted(names))}")
    return dataclasses.replace(config, **options) if options else config


def recorded(*objs: Any) -> dict[str, Any]:
    """The surface-file attributes of some settings dataclasses, by attribute name."""
    out = {}
    for obj in objs:
        for f in fields(obj):
            if f.metadata.get("attr"):
                out[f.metadata["attr"]] = _plain(getattr(obj, f.name))
    return out


def attr_names(*classes: type, flag: str) -> list[str]:
    """The attribute names whose fields have ``flag`` (``identity`` or ``shown``) set, in field order."""
    out: list[str] = []
    for cls in classes:
        for f in fields(cls):
            if f.metadata.get(flag) and f.metadata.get("attr") and f.metadata["attr"] not in out:
                out.append(f.metadata["attr"])
    return out


# What files written before these lists were recorded in them are checked and shown with.
IDENTITY_ATTRS = tuple(attr_names(Provenance, Config, flag="identity"))
SHOWN_ATTRS = tuple(attr_names(Provenance, Config, flag="shown")) + ("created",)


def add_arguments(parser: argparse.ArgumentParser, cls: type = Config, skip: tuple[str, ...] = (),
                  only: tuple[str, ...] | None = None) -> None:
    """One CLI flag per field of ``cls`` (its help, choices and default), in help groups (``only``: just these
    fields, for a command that takes a few of a dataclass's settings)."""
    groups: dict[str, Any] = {}
    for f in fields(cls):
        m = f.metadata
        if not m.get("cli", True) or f.name in skip or (only is not None and f.name not in only):
            continue
        g = groups.get(m["group"])
        if g is None:
            g = groups[m["group"]] = parser.add_argument_group(m["group"])
        flag = m.get("flag") or "--" + f.name.replace("_", "-")
        kind = _kind(f)
        text = m["help"].replace("%", "%%")  # argparse formats help strings: a plain '1 %' broke --help
        if kind is bool:
            g.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=f.default,
                           help=text)
        else:
            g.add_argument(flag, dest=f.name, type=kind, default=f.default, choices=m.get("choices"),
                           help=text, metavar=m.get("metavar"))


def from_namespace(ns: argparse.Namespace, cls: type = Config) -> Any:
    """The dataclass built from parsed arguments (fields without a flag keep their defaults)."""
    return cls(**{f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)})


def _kind(f: dataclasses.Field) -> type:
    t = str(f.type)
    if t.startswith("bool"):
        return bool
    if t.startswith("int"):
        return int
    if t.startswith("float"):
        return float
    return str


def qualified_name(fn: Any) -> str:
    """``module.qualname`` of a function or callable object: what a surface file records for it."""
    target = fn if hasattr(fn, "__qualname__") else type(fn)
    module = getattr(target, "__module__", None) or "?"
    return f"{module}.{getattr(target, '__qualname__', type(fn).__name__)}"


def _plain(v: Any) -> Any:
    """A value an HDF5 attribute or JSON can hold: callables and objects by name."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if callable(v):
        return qualified_name(v)
    return type(v).__name__
