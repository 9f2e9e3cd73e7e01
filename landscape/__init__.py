"""landscape: loss-landscape surfaces of ResNets and plain networks (Li et al. 2018), batched on the GPU.

From Python::

    import landscape
    res = landscape.compute(model, data=(x, y), x="-1:1:21", y="-1:1:21")   # any nn.Module, data and loss

The names below are imported on first use, so ``import landscape.render`` never imports torch.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {"compute": "landscape.api", "LandscapeResult": "landscape.api", "Config": "landscape.settings",
         "Directions": "landscape.directions", "Data": "landscape.data", "PlaneEvaluator": "landscape.evaluate",
         "render_surface": "landscape.render", "read_surface": "landscape.surface",
         "LandscapeError": "landscape.errors",
         "compute_landscape": "landscape.job", "connect": "landscape.connect", "Recorder": "landscape.movie",
         "register_model": "landscape.models",
         "register_dataset": "landscape.datasets", "load_checkpoint": "landscape.checkpoints"}


_MODULES = ("callbacks",)  # landscape.callbacks.lightning_callback(...) without importing it first


def __getattr__(name: str) -> Any:
    import importlib

    if name in _MODULES:
        return importlib.import_module(f"landscape.{name}")
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'landscape' has no attribute {name!r}")


__all__ = list(_LAZY)
