"""What every data-set reader returns before normalization, and the split check they share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landscape.errors import LandscapeError

SPLITS = ("train", "test")


@dataclass
class RawImages:
    """Images scaled to [0, 1] (N, C, H, W) float32 and class labels (N,), before any normalization.

    Attributes:
        mean, std: the data set's customary normalization (``--normalization default``).
    """

    x: np.ndarray
    y: np.ndarray
    name: str
    num_classes: int
    mean: tuple
    std: tuple


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise LandscapeError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
