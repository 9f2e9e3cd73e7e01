"""How precise a point is, and when to stop evaluating it (``--tolerance``): the statistics of a point's mean.

Every point's loss is a mean over samples. From three sums the engines keep on the device (the loss sum, its sum
of squares, the number correct; float64) this module gives the standard error of that mean, and, for adaptive
sampling, decides after each chunk of a fixed permutation of the data whether the point is known well enough.

* **Standard error.** ``s / sqrt(n) * sqrt(1 - n / N)``: ``s`` the sample standard deviation (ddof 1) of the
  per-sample losses, ``n`` the samples used, ``N`` the population: the whole data set the samples come from (a
  named data set's split, also under ``--samples``; the data itself when it was passed as tensors). The last
  factor is the finite-population correction: a point evaluated on all of its population has no sampling
  error. It treats the samples as a random draw from the population: exact for ``--tolerance``'s permutation,
  an approximation for ``--samples`` (the *first* N samples; fine for data sets stored in random order).
* **Accuracy.** The same formula on the 0/1 "correct" indicators: ``sqrt(p (1 - p) / (n - 1)) * sqrt(1 - n/N)``
  (the binomial standard error with the same correction), in percent.
* **A loss callable that returns only the batch mean** has no per-sample values: its spread is estimated from
  the batch means, ``s^2 = sum_b B_b (m_b - m)^2 / (k - 1)`` over the ``k`` batches (the per-sample variance when
  batches are equal-sized random subsets). With one batch it is unknown: NaN (0 on the whole population).
* **Token-weighted losses** (a language model's mean over non-ignored tokens, :mod:`landscape.objectives`): the
  mean is a ratio ``r = sum l_i / sum w_i`` of per-unit loss sums ``l_i`` and token counts ``w_i``; its standard
  error is the ratio estimator's, ``sqrt(sum (l_i - r w_i)^2 / (u - 1) * u) / sum w_i`` over ``u`` units, with
  the same finite-population correction (and the same for token accuracy).
* **Stopping (``--tolerance T``).** A point is evaluated on growing prefixes of one seeded permutation of the
  data: ``min_samples``, then x1.5 each chunk, up to all of it. After each chunk it stops when the 95 % interval's
  half-width ``1.96 * SE <= T`` (loss units) at this check and the one before (see :meth:`Sampling.stops`), or
  when the interval's lower end is above ``cap``, the figure's cap (the point only needs to be known as off the
  scale). The first check comes after ``min_samples``, so a
  first chunk that happens to hold no misclassified sample cannot stop a point with a falsely tiny spread.

Torch-free: the renderer imports :func:`figure_cap`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from landscape.errors import LandscapeError

Z95 = 1.959963984540054  # two-sided 95 % normal quantile: the interval --tolerance bounds
GROWTH = 1.5  # chunk prefixes grow by this factor: a point that needs n samples uses at most about 1.5 n
DEFAULT_MIN_SAMPLES = 500  # see README: fewer lets a lucky first chunk stop a point near the minimum too early


def figure_cap(minimum: float) -> float:
    """The default figures' cap on the loss axis for a surface whose smallest loss is ``minimum``:
    ``max(10 * minimum, minimum + 10)`` (Li et al. draw cross-entropy from 0.1 to 10)."""
    return max(10.0 * minimum, minimum + 10.0)


def chunk_ends(n_data: int, min_samples: int | None) -> list[int]:
    """The sample counts after which a point is checked: ``min_samples`` growing by :data:`GROWTH` up to
    ``n_data`` (always the last). ``None``: all the data at once (no adaptive sampling)."""
    if min_samples is None or min_samples >= n_data:
        return [n_data]
    ends = [min_samples]
    while ends[-1] < n_data:
        ends.append(min(n_data, int(math.ceil(ends[-1] * GROWTH))))
    return ends


def standard_error(s1: float, s2: float, n: int, units: int, population: int | None) -> float:
    """Standard error of the mean ``s1 / n`` of ``n`` samples, from the sum ``s1`` and sum of squares ``s2`` of
    ``units`` values: per-sample values (``units == n``), or batch means weighted by their batch size (``s1 =
    sum B_b m_b``, ``s2 = sum B_b m_b^2``, ``units`` = batches); with the finite-population correction for a
    population of ``population`` samples.

    Returns 0.0 when ``n`` covers the population, NaN when the spread is unknown (one unit, or non-finite sums).
    """
    if n <= 0:
        return math.nan
    if population is not None and n >= population:
        return 0.0 if math.isfinite(s1) else math.nan
    if units < 2 or not (math.isfinite(s1) and math.isfinite(s2)):
        return math.nan
    var = max(s2 - s1 * s1 / n, 0.0) / (units - 1)  # rounding can leave a tiny negative for a constant loss
    fpc = 1.0 - n / population if population else 1.0
    return math.sqrt(var / n * fpc)


def ratio_standard_error(s1: float, s2: float, w: float, ww: float, lw: float, n: int, units: int,
                         population: int | None) -> float:
    """Standard error of the ratio ``s1 / w`` of ``units`` units' loss sums ``l_i`` (``s1 = sum l_i``, ``s2 = sum
    l_i^2``) and weights ``w_i`` (``w = sum w_i``, ``ww = sum w_i^2``, ``lw = sum l_i w_i``) covering ``n`` samples
    (the ratio estimator's, with the finite-population correction). 0.0 on the whole population, NaN when unknown.
    """
    if n <= 0 or w <= 0:
        return math.nan
    if population is not None and n >= population:
        return 0.0 if math.isfinite(s1) else math.nan
    if units < 2 or not all(math.isfinite(v) for v in (s1, s2, lw)):
        return math.nan
    r = s1 / w
    resid = max(s2 - 2.0 * r * lw + r * r * ww, 0.0)  # sum (l_i - r w_i)^2, clear of rounding below zero
    fpc = 1.0 - n / population if population else 1.0
    return math.sqrt(resid / (units - 1) * units * fpc) / w


@dataclass
class Sampling:
    """How a surface's points are sampled.

    Attributes:
        n_data: samples in the evaluation data.
        population: the data set the samples come from (``None``: the evaluation data is the population).
        tolerance: ``--tolerance`` in loss units (``None``: every point on all the data, unless ``rtol``).
        rtol: ``--rtol``, relative to the point's mean loss: a point's tolerance is ``tolerance + rtol * |mean|``
            (as ``numpy.allclose``); 0 for none.
        min_samples: samples before the first check (adaptive only).
        cap: a point whose 95 % interval lies above it stops (the figure's cap; ``inf`` until measured).
        seed: the permutation's seed.
        per_sample: the loss gives per-sample values (else batch means: the spread comes from the batches).
        weighted: the units carry token weights (the mean and its error are a ratio's, see
            :func:`ratio_standard_error`).
    """

    n_data: int
    population: int | None = None
    tolerance: float | None = None
    rtol: float = 0.0
    min_samples: int = DEFAULT_MIN_SAMPLES
    cap: float = math.inf
    seed: int = 0
    per_sample: bool = True
    weighted: bool = False

    def __post_init__(self) -> None:
        if self.tolerance is not None and not (self.tolerance > 0 and math.isfinite(self.tolerance)):
            raise LandscapeError(f"--tolerance must be a positive number (loss units); got {self.tolerance!r}")
        if not (self.rtol >= 0 and math.isfinite(self.rtol)):
            raise LandscapeError(f"--rtol must be a positive number (a fraction of the loss); got {self.rtol!r}")
        if self.min_samples < 2:
            raise LandscapeError(f"--min-samples must be at least 2; got {self.min_samples}")
        if self.population is None or self.population < self.n_data:
            self.population = self.n_data

    @property
    def adaptive(self) -> bool:
        return self.tolerance is not None or self.rtol > 0

    def ends(self) -> list[int]:
        """The sample counts after which a point may stop (all the data at once without a tolerance)."""
        return chunk_ends(self.n_data, self.min_samples if self.adaptive else None)

    def permutation(self) -> np.ndarray | None:
        """The one fixed order in which every point sees the data (``None`` without a tolerance). numpy's legacy
        generator: the same permutation on every machine and version, so a surface resumes anywhere."""
        return np.random.RandomState(self.seed).permutation(self.n_data) if self.adaptive else None

    def units(self, n: int, batches: int) -> int:
        return n if self.per_sample else batches

    def loss_se(self, s1: float, s2: float, n: int, batches: int, weights: tuple | None = None) -> float:
        """Standard error of the mean loss; ``weights``: ``(w, ww, lw)`` of a weighted point (:attr:`weighted`)."""
        if self.weighted and weights is not None:
            return ratio_standard_error(s1, s2, *weights, n, self.units(n, batches), self.population)
        return standard_error(s1, s2, n, self.units(n, batches), self.population)

    def acc_se(self, correct: float, n: int, weights: tuple | None = None, batches: int = 0) -> float:
        """Standard error of the accuracy in percent (the 0/1 indicators' mean, whatever the loss; for token
        accuracy ``weights`` is ``(csq, w, ww, cw)``, the correct counts' ratio estimator)."""
        if self.weighted and weights is not None:
            csq, w, ww, cw = weights
            return 100.0 * ratio_standard_error(correct, csq, w, ww, cw, n, self.units(n, batches),
                                                self.population)
        return 100.0 * standard_error(correct, correct, n, n, self.population)

    def point(self, row: list[float], n: int, batches: int) -> dict[str, float]:
        """A point's row of sums (:data:`landscape.objectives.COLUMNS`) -> its ``loss``, ``loss_se``, ``acc``
        (percent) and ``acc_se``."""
        s1, s2, c, w, ww, lw, cc, cw = row
        return {"loss": s1 / w if w else math.nan, "loss_se": self.loss_se(s1, s2, n, batches, (w, ww, lw)),
                "acc": 100.0 * c / w if w else math.nan, "acc_se": self.acc_se(c, n, (cc, w, ww, cw), batches)}

    def stops_row(self, row: list[float], n: int, batches: int, met_before: bool = False) -> tuple[bool, bool]:
        """:meth:`stops` for a point's row of sums (weighted or not)."""
        return self.stops(row[0], row[1], n, batches, met_before, (row[3], row[4], row[5]))

    def stops(self, s1: float, s2: float, n: int, batches: int, met_before: bool = False,
              weights: tuple | None = None) -> tuple[bool, bool]:
        """After a chunk: ``(stop, met)``: whether the point is known well enough (or already diverged), and
        whether the tolerance is met at this check (pass it back as ``met_before`` at the next one).

        The tolerance stops a point only when met at two consecutive checks: a heavy-tailed loss (near the
        minimum a handful of misclassified samples carry most of it) easily shows a falsely small spread in a
        chunk that misses its rare large values, and checking after every chunk would otherwise let such a
        chance low stop the point (optional stopping). Replayed on the digits ResNet-56's 21x21 surface over 10
        permutations (bench/adaptive_rule.py, BENCHMARKS.md), two checks kept at least 97.1 % of the in-range
        points within T (T = 0.02, 0.05, 0.1), one check as few as 95.7 % (93.7 % with seed 123), for 5-10 %
        more image-forwards. The cap stops a point at once: a one-sided test far from the figure's range.
        """
        mean = s1 / (weights[0] if self.weighted and weights is not None else n)
        if not math.isfinite(mean):
            return True, False  # more samples keep an inf/NaN sum inf/NaN: the full evaluation diverges too
        half = Z95 * self.loss_se(s1, s2, n, batches, weights)
        if not math.isfinite(half):
            return False, False  # spread unknown yet (one batch of a mean-only loss): keep going
        if mean - half > self.cap:
            return True, False
        met = half <= (self.tolerance or 0.0) + self.rtol * abs(mean)
        return met and met_before, met
