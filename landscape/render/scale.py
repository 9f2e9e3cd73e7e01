"""Colour/contour scale shared by every renderer, so static figures and HTML pages agree."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landscape.errors import LandscapeError


@dataclass
class Scale:
    vmin: float
    vmax: float
    levels: np.ndarray
    log: bool

    def transform(self, z: np.ndarray) -> np.ndarray:
        """Values as drawn: log10 when ``log``; non-finite values stay NaN (gaps, never zeros)."""
        z = np.array(z, dtype=np.float64)
        z[~np.isfinite(z)] = np.nan
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(z > 0, np.log10(np.where(z > 0, z, 1.0)), np.nan)
        return z

    @property
    def lo(self) -> float:
        return float(np.log10(self.vmin)) if self.log else self.vmin

    @property
    def hi(self) -> float:
        return float(np.log10(self.vmax)) if self.log else self.vmax


def make_scale(arrays: list[np.ndarray], vmin: float | None = None, vmax: float | None = None,
               levels: int | None = None, log: bool = False) -> Scale:
    """A scale that shows the basin without tuning.

    Default range: from the smallest finite value to the 95th percentile, capped at ``max(10 * min, min + 10)``:
    the far edges of a surface reach 1e3..1e7 and would flatten the basin into one colour (Li et al. draw
    0.1..10 for cross-entropy). With ``log`` the cap is dropped. ``--vmin/--vmax`` override. ``levels`` contour
    lines (default 30) are spaced evenly, in log10 when ``log``.
    """
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays]) if arrays else np.array([])
    if log:
        finite = finite[finite > 0]
    if finite.size == 0 and (vmin is None or vmax is None):
        raise LandscapeError("no finite values to draw yet (is the surface computed? with --log, are values > 0?)")
    lo = float(np.min(finite)) if vmin is None else float(vmin)
    if vmax is not None:
        hi = float(vmax)
    elif log:  # a log axis already shows many decades: only the far outliers are clipped
        hi = float(np.percentile(finite, 95))
    else:
        hi = float(min(np.percentile(finite, 95), max(10 * lo, lo + 10)))
    if vmax is None and hi <= lo:
        hi = float(np.max(finite))
    if hi <= lo:
        hi = lo + (abs(lo) * 1e-3 or 1e-3)
    if log and lo <= 0:
        raise LandscapeError(f"--log needs positive values; --vmin is {lo}")
    if levels is not None and levels < 2:
        raise LandscapeError(f"--levels must be at least 2; got {levels}")
    n = levels or 30
    lv = np.linspace(np.log10(lo), np.log10(hi), n) if log else np.linspace(lo, hi, n)
    return Scale(lo, hi, lv, log)
