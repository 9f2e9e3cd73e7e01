"""Adaptive grid refinement (``--refine``): the requested grid's figure from a fraction of its points.

The grid is visited coarse to fine. Level 0 evaluates every ``S``-th point along each axis (``S`` the largest power
of two that leaves at least :data:`COARSE_INTERVALS` intervals; the last index always included) and the point
nearest θ*. Going from stride ``s`` to ``s/2``, every cell of the current level (the rectangle between
neighbouring nodes) is

* **trusted** when the cell it lies in passed its check at the level before (:data:`CHECKS`): its new points are
  predicted, never evaluated;
* **off the scale** when every corner lies above the figure's cap (``loss_cap``), where the figure draws only the
  cap: predicted too;
* otherwise **checked**: its centre is evaluated first, and its edge points too when the centre misses its
  prediction. The cell **passes** when every point it evaluated lies within the surface's tolerance of the
  prediction (``|predicted - value| <= T + R |value|``, the rule of ``--tolerance``/``--rtol``; both above the cap
  also passes); its unevaluated points are predicted.

The figure's edge is never guessed: cells whose corners lie on both sides of the cap are always checked, and at
the end every predicted point within the tolerance of the cap is evaluated, so no off-scale point is brought into
range (nor the reverse). The predictor is cubic through the four nodes of the level around a point along each
axis (a tensor product in 2D; fewer at the grid's border), in log space for a positive loss: the walls of a loss
surface are close to exponential, where a log predictor errs far less than a linear one, and a cubic is exact for
the quadratic bowl of a basin where a bilinear one is not. Accuracy is predicted in its own (linear) space; where
nodes around are not finite, bilinear from the cell's corners.

Why one check, and the centre first (replayed on the full digits ResNet-56 surfaces, 41×41 and 51×51, T = R =
0.05: ``bench/refine.py --replay``, BENCHMARKS.md): two consecutive checks before trusting a region, as adaptive
sampling requires against noise, cost up to 1.6× more points (ResNet-56) for at most 0.6 % more in-range points
within the tolerance (the values are deterministic: a check is not a noisy sample, and a value evaluated with
``--tolerance`` is matched within its own 95 % interval more); checking every new point of a checked cell instead
of its centre first costs 1.5–1.9× more.

Every decision is a function of the evaluated values alone, so a killed run, resumed, replays the same decisions,
evaluates only what is missing and ends with the same values. With several splits a cell passes only when every
split's loss does. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

DEFAULT_RTOL = 0.02  # --refine without --tolerance/--rtol: predictions within 2 % of the value
CHECKS = 1  # passed checks before a region is trusted (see the module docstring)
COARSE_INTERVALS = 8  # the coarse level has at least this many intervals per axis (9 nodes)
SWEEP = 2.0  # predicted points within this many tolerances of the cap are evaluated at the end
Z95 = 1.959963984540054


def coarsest_stride(n: int) -> int:
    """The largest power of two that leaves at least :data:`COARSE_INTERVALS` intervals along an axis of ``n``
    points (1: no refinement, every point evaluated)."""
    s = 1
    while (n - 1) / (s * 2) >= COARSE_INTERVALS:
        s *= 2
    return s


def nodes(n: int, s: int) -> np.ndarray:
    """The indices of an axis of ``n`` points at stride ``s``: every ``s``-th, and the last."""
    return np.unique(np.append(np.arange(0, n, s), n - 1))


@dataclass
class Rule:
    """When a prediction is good enough: ``|predicted - value| <= tolerance + rtol * |value|``, or both above
    ``cap`` (the figure cannot tell them apart), or both the same non-finite value."""

    tolerance: float = 0.0
    rtol: float = DEFAULT_RTOL
    cap: float = math.inf

    def ok(self, predicted: np.ndarray, value: np.ndarray, se: np.ndarray | None = None) -> np.ndarray:
        """``se``: the values' standard errors (adaptive sampling): a value known only to +-1.96 se is matched
        within that much more."""
        slack = 0.0 if se is None else Z95 * np.nan_to_num(se, nan=0.0)
        with np.errstate(invalid="ignore"):
            off = (predicted > self.cap) & (value > self.cap)
            close = np.abs(predicted - value) <= self.tolerance + self.rtol * np.abs(value) + slack
        same = (predicted == value) | (np.isnan(predicted) & np.isnan(value))
        return off | close | same


class Refinement:
    """The refinement of one grid (see the module docstring).

    Args:
        shape: ``(ny, nx)``, or ``(nx,)`` for a 1D curve.
        rule: the tolerance and the cap.
        centre: the flat index of the point nearest θ* (evaluated at level 0).
        checks: consecutive passed checks before a region is trusted.
    """

    def __init__(self, shape: tuple[int, ...], rule: Rule, centre: int | None = None, checks: int = CHECKS,
                 stride: int | None = None, spot: bool = True, cap_edges: bool = True, cap_sweep: float = SWEEP):
        self.shape = tuple(int(v) for v in shape)
        self.two_d = len(self.shape) == 2
        self.ny, self.nx = self.shape if self.two_d else (1, self.shape[0])
        self.rule, self.centre, self.checks = rule, centre, checks
        self.stride = stride or max(coarsest_stride(self.nx), coarsest_stride(self.ny) if self.two_d else 1)
        self.spot, self.cap_edges, self.cap_sweep = spot, cap_edges, cap_sweep
        self.values: dict[str, np.ndarray] = {}  # key -> (ny, nx): evaluated and predicted so far, NaN elsewhere
        self.evaluated = np.zeros((self.ny, self.nx), dtype=bool)

    def strides(self) -> list[int]:
        """``S, S/2, ..., 1``."""
        out, s = [], self.stride
        while s >= 1:
            out.append(s)
            s //= 2
        return out

    def _axes(self, s: int) -> tuple[np.ndarray, np.ndarray]:
        return (nodes(self.ny, s) if self.two_d else np.zeros(1, dtype=np.int64)), nodes(self.nx, s)

    def level0(self) -> np.ndarray:
        """The flat indices of level 0: the coarse grid and the point nearest θ*."""
        ys, xs = self._axes(self.stride)
        pts = (ys[:, None] * self.nx + xs[None, :]).reshape(-1)
        if self.centre is not None:
            pts = np.append(pts, self.centre)
        return np.unique(pts).astype(np.int64)

    # -- the driver ----------------------------------------------------------------------------------------------
    def levels(self, read: Callable[[], tuple[dict[str, np.ndarray], np.ndarray]]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(level, flat indices)`` to evaluate, level by level; after each, the caller evaluates them
        (and may have evaluated others before: a resumed run) and ``read()`` returns the evaluated values
        ``({key: flat array with NaN elsewhere}, flat evaluated mask)`` (keys: every split's ``_loss`` and
        ``_acc``). When exhausted, :attr:`values` holds every point of the grid, evaluated or predicted."""
        yield 0, self.level0()
        self._take(read())
        streak = None  # per cell of the previous level: consecutive passed checks ending at it
        prev = None
        for k, s in enumerate(self.strides()[:-1]):
            cells = self._cells(s)
            if prev is None:
                trusted = np.zeros(len(cells), dtype=bool)
            else:  # a sub-cell of a trusted or off-scale cell, or of one with enough passed checks, is trusted
                parent = self._parents(cells, prev["stride"])
                trusted = prev["trusted"][parent] | prev["off"][parent] | (streak[parent] >= self.checks)
            off = ~trusted & self._off_scale(cells)
            if self.cap_edges:  # the figure's edge, where the surface crosses the cap, is never predicted
                trusted &= ~self._straddles_cap(cells)
            active = ~trusted & ~off
            pts, owner = self._points(cells[active], s)
            if self.spot and self.two_d:  # the centres first: the edges only of cells whose centre failed
                inner = self._interior(cells[active][owner], pts)
                yield k + 1, self._missing(pts[inner])
                self._take(read())
                centre_ok = self._passed(cells[active], s)
                pts = pts[~inner & ~centre_ok[owner]]
            yield k + 1, self._missing(pts)
            self._take(read())
            passed = np.zeros(len(cells), dtype=bool)
            passed[active] = self._passed(cells[active], s)
            own = (streak[self._parents(cells, prev["stride"])] if prev is not None else np.zeros(len(cells), int))
            streak = np.where(passed, own + 1, 0)
            self._predict(cells, s)
            prev = {"stride": s, "trusted": trusted, "off": off}
        if self.cap_sweep > 0 and math.isfinite(self.rule.cap):  # where the figure's edge runs: no guessing
            yield len(self.strides()), self._near_cap()
            self._take(read())

    def _near_cap(self) -> np.ndarray:
        """Predicted points within :data:`SWEEP` tolerances of the cap (which side of it they lie on is the
        figure's edge, and a prediction may miss by more than one tolerance)."""
        near = np.zeros(self.ny * self.nx, dtype=bool)
        cap = self.rule.cap
        for key in self._losses():
            v = self.values[key].reshape(-1)
            with np.errstate(invalid="ignore"):
                near |= np.abs(v - cap) <= self.cap_sweep * (self.rule.tolerance + self.rule.rtol * cap)
        return np.flatnonzero(near & ~self.evaluated.reshape(-1))

    def _missing(self, pts: np.ndarray) -> np.ndarray:
        pts = np.unique(pts)
        return pts[~self.evaluated.reshape(-1)[pts]]

    def _interior(self, cells: np.ndarray, pts: np.ndarray) -> np.ndarray:
        """Whether each point lies strictly inside its cell (not on an edge)."""
        iy, ix = pts // self.nx, pts % self.nx
        return (iy > cells[:, 0]) & (iy < cells[:, 1]) & (ix > cells[:, 2]) & (ix < cells[:, 3])

    def _take(self, got: tuple[dict[str, np.ndarray], np.ndarray]) -> None:
        values, evaluated = got
        ev = np.asarray(evaluated, dtype=bool).reshape(self.ny, self.nx)
        for key, v in values.items():
            v = np.asarray(v, dtype=np.float64).reshape(self.ny, self.nx)
            cur = self.values.setdefault(key, np.full((self.ny, self.nx), np.nan))
            cur[ev] = v[ev]
        self.evaluated |= ev

    def predicted(self) -> np.ndarray:
        """Flat indices of the points that were predicted, not evaluated."""
        return np.flatnonzero(~self.evaluated.reshape(-1))

    # -- cells ---------------------------------------------------------------------------------------------------
    def _cells(self, s: int) -> np.ndarray:
        """Every cell of stride ``s`` as rows ``(y0, y1, x0, x1)`` (``0, 0`` for y in 1D), row-major."""
        ys, xs = self._axes(s)
        yb = np.stack([ys[:-1], ys[1:]], 1) if self.two_d else np.zeros((1, 2), dtype=np.int64)
        xb = np.stack([xs[:-1], xs[1:]], 1)
        return np.concatenate([np.repeat(yb, len(xb), 0), np.tile(xb, (len(yb), 1))], 1).astype(np.int64)

    def _parents(self, cells: np.ndarray, s: int) -> np.ndarray:
        """The index, among the cells of stride ``s``, of the cell containing each (finer) cell."""
        ys, xs = self._axes(s)
        px = np.searchsorted(xs, cells[:, 2], side="right") - 1
        py = (np.searchsorted(ys, cells[:, 0], side="right") - 1) if self.two_d else np.zeros(len(cells), int)
        return py * (len(xs) - 1) + px

    def _corners(self, cells: np.ndarray, field: np.ndarray) -> np.ndarray:
        y0, y1, x0, x1 = cells.T
        return np.stack([field[y0, x0], field[y0, x1], field[y1, x0], field[y1, x1]], -1)

    def _off_scale(self, cells: np.ndarray) -> np.ndarray:
        off = np.ones(len(cells), dtype=bool)
        for key in self._losses():
            c = self._corners(cells, self.values[key])
            with np.errstate(invalid="ignore"):
                off &= np.all(~np.isfinite(c) | (c > self.rule.cap), axis=1)
        return off

    def _straddles_cap(self, cells: np.ndarray) -> np.ndarray:
        out = np.zeros(len(cells), dtype=bool)
        for key in self._losses():
            c = self._corners(cells, self.values[key])
            with np.errstate(invalid="ignore"):
                above = ~np.isfinite(c) | (c > self.rule.cap)
            out |= above.any(1) & ~above.all(1)
        return out

    def _points(self, cells: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
        """The points of stride ``s // 2`` in each cell that are not its corners: ``(flat index, cell row)``."""
        half = max(s // 2, 1)
        ys, xs = self._axes(half)
        flat, owner = [], []
        for i, (y0, y1, x0, x1) in enumerate(cells):
            yy = ys[(ys >= y0) & (ys <= y1)] if self.two_d else np.zeros(1, dtype=np.int64)
            xx = xs[(xs >= x0) & (xs <= x1)]
            pts = (yy[:, None] * self.nx + xx[None, :]).reshape(-1)
            corners = np.array([y0 * self.nx + x0, y0 * self.nx + x1, y1 * self.nx + x0, y1 * self.nx + x1])
            pts = pts[~np.isin(pts, corners)]
            flat.append(pts)
            owner.append(np.full(len(pts), i))
        if not flat:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        return np.concatenate(flat).astype(np.int64), np.concatenate(owner).astype(np.int64)

    def _new_points(self, cells: np.ndarray, s: int) -> np.ndarray:
        return np.unique(self._points(cells, s)[0])

    def _stencil(self, axis_nodes: np.ndarray, lo: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per point: the indices of up to four nodes around it (the cell's two and one beyond each side, where
        the axis has them) and their cubic (Lagrange) weights at ``pos``; missing nodes get weight 0."""
        k = np.searchsorted(axis_nodes, lo, side="right") - 1
        idx = k[:, None] + np.arange(-1, 3)[None, :]
        valid = (idx >= 0) & (idx < len(axis_nodes))
        at = axis_nodes[np.clip(idx, 0, len(axis_nodes) - 1)].astype(np.float64)
        w = np.ones(idx.shape)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            for j in range(4):
                for m in range(4):
                    if m != j:
                        w[:, j] *= np.where(valid[:, m], (pos - at[:, m]) / (at[:, j] - at[:, m]), 1.0)
        w = np.where(valid, w, 0.0)
        return np.clip(idx, 0, len(axis_nodes) - 1), w

    def _interpolate(self, cells: np.ndarray, pts: np.ndarray, key: str, s: int) -> np.ndarray:
        """``key`` at ``pts`` (each inside the cell of stride ``s`` on its row of ``cells``): cubic through the
        nodes of stride ``s`` around it (a tensor product in 2D; fewer nodes at the grid's border), in log space
        for a loss whose nodes there are all positive and finite, else bilinear from the cell's corners."""
        ys, xs = self._axes(s)
        iy, ix = pts // self.nx, pts % self.nx
        sx, wx = self._stencil(xs, cells[:, 2], ix.astype(np.float64))
        if self.two_d:
            sy, wy = self._stencil(ys, cells[:, 0], iy.astype(np.float64))
        else:
            sy, wy = np.zeros((len(pts), 1), dtype=np.int64), np.ones((len(pts), 1))
        field = self.values[key]
        vals = field[ys[sy][:, :, None], xs[sx][:, None, :]]  # (N, ny-stencil, nx-stencil)
        w = wy[:, :, None] * wx[:, None, :]
        used = w != 0
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            cubic = np.sum(np.where(used, w * vals, 0.0), (1, 2))
            if key.endswith("_loss"):
                positive = np.all(~used | (np.isfinite(vals) & (vals > 0)), (1, 2))
                logc = np.exp(np.sum(np.where(used, w * np.log(np.where(vals > 0, vals, 1.0)), 0.0), (1, 2)))
                cubic = np.where(positive, logc, np.nan)
            fallback = ~np.isfinite(cubic)
            if fallback.any():  # non-finite nodes around: bilinear from the corners alone
                cubic[fallback] = self._bilinear(cells[fallback], pts[fallback], field)
        return cubic

    def _bilinear(self, cells: np.ndarray, pts: np.ndarray, field: np.ndarray) -> np.ndarray:
        iy, ix = pts // self.nx, pts % self.nx
        y0, y1, x0, x1 = cells.T
        tx = np.where(x1 > x0, (ix - x0) / np.maximum(x1 - x0, 1), 0.0)
        ty = np.where(y1 > y0, (iy - y0) / np.maximum(y1 - y0, 1), 0.0)
        w = np.stack([(1 - tx) * (1 - ty), tx * (1 - ty), (1 - tx) * ty, tx * ty], -1)
        c = self._corners(cells, field)
        return np.sum(np.where(w > 0, w * c, 0.0), -1)

    def _passed(self, cells: np.ndarray, s: int) -> np.ndarray:
        """Per active cell: each of its new points evaluated so far lies within the tolerance of its prediction,
        for every loss."""
        pts, owner = self._points(cells, s)
        ok = np.ones(len(cells), dtype=bool)
        rule = self.rule
        seen = self.evaluated.reshape(-1)[pts]  # a check counts only the points evaluated so far
        pts, owner = pts[seen], owner[seen]
        for key in self._losses():
            got = self.values[key].reshape(-1)[pts]
            se = self.values.get(key + "_se")
            fine = rule.ok(self._interpolate(cells[owner], pts, key, s), got,
                           se.reshape(-1)[pts] if se is not None else None)
            np.logical_and.at(ok, owner, fine)
        return ok

    def _predict(self, cells: np.ndarray, s: int) -> None:
        """Fill the new points of trusted and off-scale cells that no active cell evaluated."""
        pts, owner = self._points(cells, s)
        keep = ~self.evaluated.reshape(-1)[pts]
        pts, owner = pts[keep], owner[keep]
        for key in self._predicted_keys():
            flat = self.values[key].reshape(-1)
            todo = np.isnan(flat[pts])
            flat[pts[todo]] = self._interpolate(cells[owner[todo]], pts[todo], key, s)

    def _losses(self) -> list[str]:
        return [k for k in self.values if k.endswith("_loss")]

    def _predicted_keys(self) -> list[str]:
        return [k for k in self.values if not k.endswith("_se")]
