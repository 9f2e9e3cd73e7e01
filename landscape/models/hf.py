"""HuggingFace models from a local folder (``--model hf:DIR``): ``config.json`` and the weights as safetensors
(``model.safetensors``, or shards listed in ``model.safetensors.index.json``), loaded by ``transformers`` with
no download, ever (``local_files_only``). ``transformers`` is an optional extra (``pip install transformers``).

The model class is the one ``config.json`` names (``architectures``), so a ``GPT2LMHeadModel`` folder gives a
``GPT2LMHeadModel`` with its head and its own loss. Weights are loaded in float32: the perturbed weights
theta* + alpha delta + beta eta are then exact to float32 rounding whatever the folder stores them in.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os

import torch
import torch.nn as nn

from landscape.errors import LandscapeError

PREFIX = "hf:"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")


def is_hf_folder(path: str) -> bool:
    """A folder holding ``config.json`` and safetensors weights."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")) and \
        any(os.path.isfile(os.path.join(path, f)) for f in WEIGHT_FILES)


def require_transformers(what: str):
    try:
        import transformers
    except ImportError:
        raise LandscapeError(f"{what} needs transformers, which is not installed; pip install transformers (or "
                             "pip install 'landscape[hf]')")
    return transformers


def check_folder(folder: str, flag: str = "--model hf:DIR") -> str:
    """The folder's absolute path, or a one-line error saying what is missing."""
    path = os.path.abspath(os.path.expanduser(folder))
    if not os.path.isdir(path):
        raise LandscapeError(f"{flag}: no such folder {folder!r}; pass a local HuggingFace model folder "
                             "(config.json and model.safetensors), e.g. one written by save_pretrained()")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise LandscapeError(f"{flag}: {folder!r} has no config.json; pass the folder save_pretrained() wrote")
    if not any(os.path.isfile(os.path.join(path, f)) for f in WEIGHT_FILES):
        found = sorted(os.path.basename(p) for p in glob.glob(os.path.join(path, "*")))[:8]
        raise LandscapeError(f"{flag}: {folder!r} has no model.safetensors or model.safetensors.index.json (found: "
                             f"{', '.join(found) or 'nothing'}); save the weights with save_pretrained("
                             "safe_serialization=True)")
    return path


def load_hf_model(folder: str) -> tuple[nn.Module, dict]:
    """The model of a local HuggingFace folder, in eval mode, float32, on the CPU, and its info (``arch``,
    ``path``, ``sha256`` of its config and weight files).

    Raises:
        LandscapeError: transformers missing, no such folder, no config or safetensors weights, a class
            transformers does not have, or weights that do not fit the config.
    """
    path = check_folder(folder)
    transformers = require_transformers("--model hf:DIR")
    with open(os.path.join(path, "config.json")) as f:
        try:
            names = json.load(f).get("architectures") or []
        except ValueError as e:
            raise LandscapeError(f"--model hf:{folder}: config.json is not valid JSON ({e})")
    cls = getattr(transformers, names[0], None) if names else None
    if cls is None:
        raise LandscapeError(f"--model hf:{folder}: config.json names architecture {names[:1] or 'none'}, which "
                             f"transformers {transformers.__version__} does not have; pass --model MODULE:FACTORY")
    try:
        with _quiet(transformers):
            try:
                model = cls.from_pretrained(path, local_files_only=True, dtype=torch.float32)
            except TypeError:  # transformers before 4.56 calls it torch_dtype
                model = cls.from_pretrained(path, local_files_only=True, torch_dtype=torch.float32)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        raise LandscapeError(f"--model hf:{folder}: {names[0]} cannot be loaded from it ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0][:200]})")
    # as every checkpoint: weights with NaN/inf (a diverged run) or negative BatchNorm variances are refused here,
    # in one line, not drawn as a surface of NaN
    from landscape.validate import check_finite

    check_finite(model.state_dict(), path)
    model.eval()
    model.arch = PREFIX + names[0]  # type: ignore[attr-defined]
    info = {"arch": PREFIX + names[0], "path": path, "sha256": folder_sha256(path), "num_classes": None,
            "in_channels": None, "stem": os.path.basename(path.rstrip(os.sep)) or "model", "tokenizer": path}
    return model, info


@contextlib.contextmanager
def _quiet(transformers):
    """No progress bar or advice on stderr while loading (the CLI's errors are one line); restored after."""
    log = transformers.utils.logging
    bar, level = log.is_progress_bar_enabled(), log.get_verbosity()
    log.disable_progress_bar()
    log.set_verbosity_error()
    try:
        yield
    finally:
        log.set_verbosity(level)
        if bar:
            log.enable_progress_bar()


def folder_sha256(path: str) -> str:
    """SHA-256 over the folder's config and weight files (names and bytes): the model's identity on resume."""
    h = hashlib.sha256()
    files = ["config.json"] + sorted(os.path.basename(p) for p in glob.glob(os.path.join(path, "*.safetensors")))
    for name in files + [f for f in WEIGHT_FILES[1:] if os.path.isfile(os.path.join(path, f))]:
        h.update(name.encode())
        with open(os.path.join(path, name), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def load_tokenizer(folder: str):
    """The folder's tokenizer (``AutoTokenizer``, local files only)."""
    path = os.path.abspath(os.path.expanduser(folder))
    transformers = require_transformers("text data")
    if not any(os.path.isfile(os.path.join(path, f)) for f in TOKENIZER_FILES):
        raise LandscapeError(f"no tokenizer in {folder!r} (none of {', '.join(TOKENIZER_FILES)}); save one there "
                             "with tokenizer.save_pretrained(DIR), or tokenize the text yourself and pass a dict of "
                             "input_ids and labels")
    try:
        with _quiet(transformers):
            return transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LandscapeError(f"no tokenizer in {folder!r} ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0][:160]}); save one there with "
                             "tokenizer.save_pretrained(DIR), or tokenize the text yourself and pass a dict of "
                             "input_ids and labels")
