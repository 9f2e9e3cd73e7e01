"""Networks from outside the registry, named on the CLI with ``--model``:

* ``torchvision:NAME``: any torchvision classification model (``torchvision.models.get_model``, no weights
  downloaded; the number of classes is the checkpoint's);
* ``timm:NAME``: any timm model, when timm is installed (``pip install timm``);
* ``MODULE:FACTORY``: a user's factory, from an import path (``mypkg.nets:build``) or a file
  (``nets/my_model.py:build``), called with ``num_classes``/``in_channels`` when its signature takes them.

The checkpoint's weights are then loaded into the module by :func:`landscape.checkpoints.load_checkpoint`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import os
import sys
from typing import Any

import torch.nn as nn

from landscape.errors import LandscapeError
from landscape.models import call_factory

SPEC_HELP = "--model takes torchvision:NAME, timm:NAME or MODULE:FACTORY (e.g. my_nets.py:build)"


def build_model(spec: str, num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """The untrained ``nn.Module`` that ``spec`` names (see the module docstring), with ``arch = spec``.

    Raises:
        LandscapeError: a malformed spec, an unknown torchvision/timm name, timm missing, a module or factory
            that cannot be imported, a factory that fails or does not return an ``nn.Module``.
    """
    kind, sep, name = str(spec).rpartition(":")
    if not sep or not kind or not name:
        raise LandscapeError(f"bad --model {spec!r}; {SPEC_HELP}")
    if kind == "torchvision":
        model = _torchvision(name, num_classes)
    elif kind == "timm":
        model = _timm(name, num_classes, in_channels)
    else:
        factory = import_callable(kind, name, "--model")
        try:
            model = call_factory(factory, num_classes=num_classes, in_channels=in_channels)
        except Exception as e:  # noqa: BLE001 - the user's code: report whatever it raised, in one line
            raise LandscapeError(f"--model {spec!r}: the factory raised {type(e).__name__}: {str(e)[:200]}")
    if not isinstance(model, nn.Module):
        raise LandscapeError(f"--model {spec!r} returned a {type(model).__name__}, not an nn.Module; the factory "
                             "must return the (untrained) network")
    model.arch = spec  # type: ignore[attr-defined]
    return model


def _torchvision(name: str, num_classes: int) -> nn.Module:
    import torchvision

    names = torchvision.models.list_models(module=torchvision.models)  # classification models only
    if name.lower() not in names:
        close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.5)
        raise LandscapeError(f"unknown torchvision model {name!r}"
                             f"{'; did you mean ' + ', '.join(close) + '?' if close else ''} (torchvision "
                             f"{torchvision.__version__} has {len(names)} classification models, e.g. resnet18, "
                             "vgg11_bn, vit_b_16)")
    try:
        return torchvision.models.get_model(name.lower(), weights=None, num_classes=num_classes)
    except (TypeError, ValueError) as e:
        raise LandscapeError(f"torchvision:{name} cannot be built with {num_classes} classes ({e})")


def _timm(name: str, num_classes: int, in_channels: int) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise LandscapeError("--model timm:NAME needs timm, which is not installed; pip install timm "
                             "(or pip install 'landscape[timm]')")
    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise LandscapeError(f"unknown timm model {name!r}{hint}")
    return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)


def import_callable(module: str, attr: str, flag: str = "--model") -> Any:
    """``module`` (an import path, or a ``.py`` file) -> its callable attribute ``attr`` (dotted names allowed);
    errors name ``flag``."""
    help_ = SPEC_HELP if flag == "--model" else f"{flag} takes MODULE:FN (an import path or a .py file)"
    try:
        if module.endswith(".py") or os.sep in module or "/" in module:
            path = os.path.abspath(os.path.expanduser(module))
            if not os.path.isfile(path):
                raise LandscapeError(f"{flag}: no such file {module!r}; {help_}")
            # A unique module name per file, so two files called model.py do not shadow each other; the file's
            # folder goes on sys.path so its own imports of neighbouring modules work.
            mod_name = f"landscape_user_{hashlib.sha1(path.encode()).hexdigest()[:10]}"
            mod = sys.modules.get(mod_name)
            if mod is None:
                spec = importlib.util.spec_from_file_location(mod_name, path)
                mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
                folder = os.path.dirname(path)
                if folder not in sys.path:
                    sys.path.insert(0, folder)
                sys.modules[mod_name] = mod
                try:
                    spec.loader.exec_module(mod)  # type: ignore[union-attr]
                except BaseException:
                    del sys.modules[mod_name]
                    raise
        else:
            mod = importlib.import_module(module)
    except LandscapeError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's module: whatever its import raises, in one line
        raise LandscapeError(f"{flag}: cannot import {module!r} ({type(e).__name__}: {str(e)[:200]}); pass an "
                             "importable module path or a .py file")
    obj: Any = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            found = sorted(n for n, v in vars(mod).items() if callable(v) and not n.startswith("_"))[:12]
            raise LandscapeError(f"{flag}: {module!r} has no {attr!r}; its callables: {', '.join(found) or 'none'}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise LandscapeError(f"{flag}: {module}:{attr} is a {type(obj).__name__}, not a callable")
    return obj
