"""Colour/contour scale shared by every renderer, so static figures, the paper figure and HTML pages agree.

One :class:`Scale` fixes the value range, the contour levels (round numbers), the colour-bar ticks and how
values map to colours; each renderer only translates it into its library's terms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from landscape.cli import MAX_LEVELS
from landscape.errors import LandscapeError
from landscape.sampling import figure_cap

# Mantissas per decade for log-spaced levels, densest first; the densest set that stays under the target count
# wins. All are round, so the levels double as legible labels and colour-bar ticks.
_MANTISSAS = ((1, 1.5, 2, 3, 5, 7), (1, 2, 3, 5), (1, 2, 5), (1, 3), (1,))
_TARGET_LEVELS = 24
_MAX_TICKS = 8


@dataclass
class Scale:
    """Value range, contour levels and colour mapping of one figure (or of several sharing one scale).

    Attributes:
        vmin: lowest value shown (raw loss units).
        vmax: highest value shown, the cap; the 3D surface ends here.
        levels: contour levels in raw units, increasing.
        log: heights (3D z axis, 1D loss axis) are drawn as log10 values.
        geometric: colours follow log10 of the value, so the basin gets as many colours as the walls.
        ticks: round values for colour bars and labels, a subset of the levels where possible.
        data_min, data_max: the finite extremes of the values the scale was made for (NaN: unknown): what lies
            beyond the range is marked on colour bars (:attr:`extend`, :meth:`bar_ticks`, :meth:`bar_label`).
    """

    vmin: float
    vmax: float
    levels: np.ndarray
    log: bool
    geometric: bool = False
    ticks: np.ndarray = field(default_factory=lambda: np.array([]))
    data_min: float = float("nan")
    data_max: float = float("nan")
    maxima: tuple = ()  # one colour bar for several panels: each panel's maximum, in their order (:meth:`panels`)

    @property
    def over(self) -> bool:
        """Some values lie above the range (drawn in the top colour)."""
        return bool(self.data_max > self.vmax * (1 + 1e-9) + 1e-300)

    @property
    def under(self) -> bool:
        """Some values lie below the range (``--vmin`` above the minimum)."""
        return bool(self.data_min < self.vmin - abs(self.vmin) * 1e-9 - 1e-300)

    @property
    def extend(self) -> str:
        """matplotlib's colour-bar ``extend``: a triangle at each end with values beyond it."""
        # matplotlib's filled contours close an extended end at +-1e250: a range reaching that far cannot have one
        over, under = self.over and self.vmax < 1e249, self.under and self.vmin > -1e249
        return {(True, True): "both", (True, False): "max", (False, True): "min"}.get((over, under), "neither")

    def bar_ticks(self) -> tuple[list[float], list[str]]:
        """Colour-bar ticks (raw values) and labels: the round ticks in range; with values above the range its top
        is labelled ``≥ vmax`` (and below, ``≤ vmin``), a round tick too close to it dropped so labels never
        collide."""
        ticks = [float(t) for t in self.ticks if self.vmin <= t <= self.vmax]
        span = self.chi - self.clo
        ends = ([self.vmax] if self.over else []) + ([self.vmin] if self.under else [])
        for end in ends:
            c = float(self.colour(np.array([end]))[0])
            # a tenth of the bar: the end's label and a round one nearer than that ran together on a short bar
            ticks = [t for t in ticks if abs(float(self.colour(np.array([t]))[0]) - c) > 0.1 * span] + [end]
        ticks = sorted(ticks)
        labels = [("≥ " if self.over and t == self.vmax else "≤ " if self.under and t == self.vmin else "")
                  + fmt_value(t) for t in ticks]
        return ticks, labels

    def of(self, arrays: list) -> "Scale":
        """The same scale (range, levels, colours) for a figure of ``arrays`` alone: its over/under marks and the
        maximum its colour bar states are those values' own, not those of every surface the scale was made for."""
        finite = [np.asarray(a, float)[np.isfinite(a)] for a in arrays]
        every = np.concatenate([f.ravel() for f in finite]) if finite else np.array([])
        lo, hi = (float(every.min()), float(every.max())) if every.size else (float("nan"), float("nan"))
        return replace(self, data_min=lo, data_max=hi)

    def panels(self, arrays: list) -> "Scale":
        """The scale of one colour bar beside several panels (``arrays``, one per panel): its title states every
        panel's maximum, in their order (``max 8056 / 2.7e+07``), not the largest as if it were each one's."""
        return replace(self, maxima=tuple(float(np.nanmax(np.where(np.isfinite(a), a, np.nan)))
                                          if np.isfinite(a).any() else float("nan") for a in arrays))

    def bar_label(self, label: str) -> str:
        """A colour bar's title: with values above the range, the true maximum too (``train loss (max 1.3e14)``;
        one bar for several panels, each one's: ``max 8056 / 2.7e+07``)."""
        if not self.over:
            return label
        tops = self.maxima if len(self.maxima) > 1 else (self.data_max,)
        return f"{label} (max {' / '.join(fmt_value(m) for m in tops)})"

    def transform(self, z: np.ndarray) -> np.ndarray:
        """Heights as drawn: log10 when ``log``; non-finite values stay NaN (gaps, never zeros)."""
        z = np.array(z, dtype=np.float64)
        z[~np.isfinite(z)] = np.nan
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                z = np.where(z > 0, np.log10(np.where(z > 0, z, 1.0)), np.nan)
        return z

    @property
    def lo(self) -> float:
        """``vmin`` as a height."""
        return float(np.log10(self.vmin)) if self.log else self.vmin

    @property
    def hi(self) -> float:
        """``vmax`` (the cap) as a height."""
        return float(np.log10(self.vmax)) if self.log else self.vmax

    def colour(self, z: np.ndarray) -> np.ndarray:
        """Colour coordinate of raw values (log10 when ``geometric``), clipped to the range; NaN stays NaN."""
        z = np.array(z, dtype=np.float64)
        z[~np.isfinite(z)] = np.nan
        z = np.clip(z, self.vmin, self.vmax)
        return np.log10(z) if self.geometric else z

    @property
    def clo(self) -> float:
        return float(self.colour(np.array([self.vmin]))[0])

    @property
    def chi(self) -> float:
        return float(self.colour(np.array([self.vmax]))[0])

    @property
    def labelled(self) -> np.ndarray:
        """The levels that may carry a label on contour lines: the round ticks that are levels, else (``--levels
        N``, not round) every few levels."""
        hit = self.levels[np.isclose(self.levels[:, None], self.ticks[None, :]).any(axis=1)] if len(self.ticks) \
            else self.levels[:0]
        return hit if len(hit) else self.levels[::max(1, len(self.levels) // 6)]

    def norm(self):
        """The matplotlib norm that maps raw values to colours as :meth:`colour` does."""
        from matplotlib.colors import LogNorm, Normalize

        return LogNorm(self.vmin, self.vmax) if self.geometric else Normalize(self.vmin, self.vmax)


def fmt_value(v: float) -> str:
    """A level or tick as people write it: ``0.01``, ``1.5``, ``300``, ``2e+04``; at most 3 significant digits."""
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-3:
        return f"{v:.2g}"
    digits = max(0, 2 - int(math.floor(math.log10(a))))
    s = f"{v:.{digits}f}"
    return s.rstrip("0").rstrip(".") if "." in s else s


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    # a float: the int 10 ** 28 would turn the levels into an object array (no np.round) for losses above ~1e19
    mag = 10.0 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))


def linear_levels(lo: float, hi: float, target: int = 12) -> np.ndarray:
    """Round, evenly spaced values inside ``[lo, hi]`` (Li et al.'s fixed spacing, e.g. every 0.5)."""
    step = _nice_step(hi - lo, target)
    start = math.ceil(lo / step - 1e-9) * step
    vals = np.arange(start, hi + step * 1e-9, step)
    return np.round(vals / step) * step  # no 0.30000000000000004


def geometric_levels(lo: float, hi: float, target: int = _TARGET_LEVELS) -> np.ndarray:
    """Round, log-spaced values inside ``[lo, hi]`` (``lo > 0``): 1, 1.5, 2, 3, 5, 7 per decade, thinned out
    when the range spans many decades."""
    k0, k1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    vals = np.array([])
    for mantissas in _MANTISSAS:
        vals = np.array([float(f"{m}e{k}") for k in range(k0, k1 + 1) for m in mantissas])
        vals = vals[(vals >= lo * (1 - 1e-9)) & (vals <= hi * (1 + 1e-9))]
        if len(vals) <= target:
            break
    return vals


def pick_ticks(levels: np.ndarray, geometric: bool, most: int = _MAX_TICKS) -> np.ndarray:
    """At most ``most`` round values out of ``levels`` for a colour bar: the densest of the 1-2-5, 1-3 and
    powers-of-ten subsets that fits when geometric, every n-th level otherwise."""
    levels = np.asarray(levels, dtype=float)
    if len(levels) <= most:
        return levels
    if geometric:
        mant = np.round(levels / 10 ** np.floor(np.log10(levels)), 6)
        for keep in ((1, 2, 5), (1, 3), (1,)):
            sub = levels[np.isin(mant, keep)]
            if 3 <= len(sub) <= most:
                return sub
        if np.isin(mant, (1,)).sum() > most:  # many decades: every n-th power of ten
            levels = levels[np.isin(mant, (1,))]
    step = int(math.ceil(len(levels) / most))
    return levels[::step]


def make_scale(arrays: list[np.ndarray], vmin: float | None = None, vmax: float | None = None,
               levels: int | None = None, log: bool = False, ceiling: float | None = None) -> Scale:
    """A scale that shows the basin as well as the walls, without tuning.

    Range: from the smallest finite value to the 95th percentile, capped at ``max(10 * min, min + 10)``: the far
    edges of a surface reach 1e3..1e7 and would flatten the basin into one colour (Li et al. draw 0.1..10 for
    cross-entropy). With ``log`` the cap is dropped. ``vmin``/``vmax`` override.

    Levels: by default round values spaced geometrically (1, 1.5, 2, 3, 5, 7 per decade) when the range spans
    enough decades of positive values for 10 of them, so the basin holds as many lines as the walls; otherwise
    round values at a fixed spacing. Colours follow the same spacing. ``levels=N`` asks for exactly N evenly
    spaced levels (in log10 when ``log``).

    Args:
        arrays: the surfaces that share this scale.
        vmin, vmax: range overrides (raw units).
        levels: number of contour levels, or None for round defaults.
        log: log10 heights and log-spaced levels.
        ceiling: the default range never goes above it: a surface computed with ``--tolerance`` records the cap
            (``loss_cap``) above which its points were only resolved as "off the scale".

    Raises:
        LandscapeError: nothing finite to draw, ``--log`` with non-positive values, fewer than 2 levels.
    """
    every = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays]) if arrays else np.array([])
    # the extremes of every finite value, for the colour bars' over/under-range marks
    dmin, dmax = (float(every.min()), float(every.max())) if every.size else (float("nan"), float("nan"))
    finite = every
    if log:  # (a subnormal value has no usable log10: matplotlib's log scale fails on it)
        finite = finite[finite > 1e-300]
    if finite.size == 0 and (vmin is None or vmax is None):
        raise LandscapeError("no finite values to draw yet (is the surface computed? with --log, are values > 0?)")
    lo = float(np.min(finite)) if vmin is None else float(vmin)
    if vmax is not None:
        hi = float(vmax)
    elif log:  # a log axis already shows many decades: only the far outliers are clipped
        hi = float(np.percentile(finite, 95))
    else:
        hi = float(min(np.percentile(finite, 95), figure_cap(lo)))
    if vmax is None and hi <= lo:
        hi = float(np.max(finite))
    if vmax is None and ceiling is not None and lo < ceiling < hi:
        hi = float(ceiling)
    if hi - lo < 1e-300:  # flat, or so nearly (subnormal values) that log10 cannot take the span
        hi = lo + (max(abs(lo) * 1e-3, 1e-300) if lo else 1e-3)
    if log and lo <= 0:
        raise LandscapeError(f"--log needs positive values; --vmin is {lo}")
    if levels is not None and not 2 <= levels <= MAX_LEVELS:
        raise LandscapeError(f"--levels must be from 2 to {MAX_LEVELS}; got {levels}")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise LandscapeError(f"the colour scale needs finite limits; got --vmin {lo} --vmax {hi}")
    if not np.isfinite(hi - lo):  # a file's values from -1e308 to 1e308: no arithmetic on the range survives
        raise LandscapeError(f"the values range from {lo:.3g} to {hi:.3g}, wider than a float can hold; pass "
                             "--vmin and --vmax to draw a part of it")
    geometric = lo > 1e-300 and (log or hi / lo >= 10)
    if levels is not None:
        lv = np.logspace(np.log10(lo), np.log10(hi), levels) if log else np.linspace(lo, hi, levels)
        geometric = log
        ticks = lv if levels <= _MAX_TICKS else pick_ticks(linear_levels(lo, hi, 6), False)
    else:
        lv = geometric_levels(lo, hi) if geometric else np.array([])
        # Little more than a decade gives few log-spaced levels: fixed round spacing resolves it better
        # (Li et al.'s choice). A --log axis keeps log-spaced levels while there are a few.
        if len(lv) < (3 if log else 10):
            geometric = geometric and log and len(lv) >= 3
            lv = linear_levels(lo, hi)
        ticks = pick_ticks(lv, geometric)
    return Scale(lo, hi, np.asarray(lv, dtype=float), log, geometric, np.asarray(ticks, dtype=float), dmin, dmax)


MOSTLY = 0.75  # the share of a surface above the linear cap from which it is drawn on a log scale by default


def mostly_over(arrays: list[np.ndarray], ceiling: float | None = None) -> bool:
    """More than :data:`MOSTLY` of the finite values lie above the default linear range (its cap,
    :func:`landscape.sampling.figure_cap`): a linear figure would be mostly one colour; drawn on a log scale
    instead (when every value is positive). A trained ResNet's ±1 plane has about half its points above the
    cap and stays linear, as Li et al. draw it."""
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays]) if arrays else np.array([])
    if finite.size == 0 or finite.min() <= 0:
        return False
    cap = figure_cap(float(finite.min()))
    if ceiling is not None:
        cap = min(cap, ceiling)
    return bool(np.mean(finite > cap) > MOSTLY)
