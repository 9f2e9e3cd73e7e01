"""Extreme eigenpairs of a symmetric operator by Lanczos with full reorthogonalization.

Full reorthogonalization (classical Gram-Schmidt, twice: "twice is enough") keeps the Krylov basis orthonormal to
working precision, so no spurious copies of converged eigenvalues appear and the Ritz pairs' residuals are read
off the tridiagonal matrix: ``||H u_i - theta_i u_i|| = beta_j |s_{j,i}|``. The price is storing one vector per
step (``steps x dim`` in the operator's dtype), which for the Hessians here (up to a few million parameters and a
hundred steps) is far cheaper than the HVPs themselves.

Both ends of the spectrum converge in the same Krylov space, so the top-k and the smallest eigenvalue come from
one run (the reference instead runs ARPACK twice, the second time on ``H - lambda_max I``).

Everything is deterministic given ``seed``: the start vector is drawn on the CPU in float64, then cast.
A single start vector finds each distinct eigenvalue once; after the Krylov space is exhausted (an invariant
subspace) a fresh random vector, orthogonal to the basis, continues the run, which also reaches the second copy
of a repeated eigenvalue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generator, Optional

import torch

from landscape.errors import LandscapeError

DEFAULT_TOL = 1e-5
DEFAULT_MAX_ITER = 100


@dataclass
class Eigenpairs:
    """Ritz pairs: ``eigenvalues`` (k,) float64 on the CPU, ``eigenvectors`` (k, dim) unit rows in the operator's
    dtype and device, ``residuals`` (k,) the estimated ``||H u - lambda u||``, and how the run went."""

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    residuals: torch.Tensor
    iterations: int
    converged: bool


@dataclass
class Tridiagonal:
    """The Lanczos relation ``H Q^T ~= Q^T T``: diagonal ``alpha`` (m,), off-diagonal ``beta`` (m-1,) (float64,
    zero where a restart split the matrix), the basis ``Q`` (m, dim), and ``residual`` the norm of the last
    residual vector (the coupling to the step that was not taken)."""

    alpha: torch.Tensor
    beta: torch.Tensor
    Q: torch.Tensor
    residual: float
    block_start: int = 0  # the step where the last restart began (0: none)

    def matrix(self) -> torch.Tensor:
        return torch.diag(self.alpha) + torch.diag(self.beta, 1) + torch.diag(self.beta, -1)


def _operator_meta(op) -> tuple[Callable, int, torch.dtype, torch.device]:
    matvec = getattr(op, "matvec", None)
    if matvec is None or not hasattr(op, "dim"):
        raise LandscapeError(f"expected an operator with .matvec(v) and .dim (e.g. HessianOperator), got "
                             f"{type(op).__name__}")
    return matvec, int(op.dim), getattr(op, "dtype", torch.float64), getattr(op, "device", torch.device("cpu"))


def random_unit(dim: int, generator: torch.Generator, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    v = torch.randn(dim, generator=generator, dtype=torch.float64)
    return (v / v.norm()).to(device, dtype)  # normalized in float64, before the cast


def lanczos(op, steps: int, *, seed: int = 0, v0: Optional[torch.Tensor] = None, restart: bool = True,
            stop: Optional[Callable[["Tridiagonal"], bool]] = None) -> Tridiagonal:
    """Run up to ``steps`` Lanczos steps on ``op`` (one ``op.matvec`` each).

    Args:
        op: anything with ``.matvec(v)`` and ``.dim`` (and optionally ``.dtype``, ``.device``).
        steps: the most steps (capped at ``op.dim``).
        seed: seeds the start vector (and restart vectors) when ``v0`` is not given.
        v0: start vector (normalized here).
        restart: continue with a fresh orthogonal random vector when the Krylov space is exhausted; without it
            the run stops there (stochastic Lanczos quadrature wants only the start vector's Krylov space).
        stop: called after each step with the tridiagonal so far; returning True ends the run.
    """
    matvec, dim, dtype, device = _operator_meta(op)
    return drive(lanczos_steps(dim, dtype, device, steps, seed=seed, v0=v0, restart=restart, stop=stop), matvec)


def drive(steps: Generator, matvec: Callable[[torch.Tensor], torch.Tensor]):
    """Run a :func:`lanczos_steps`-style generator to its end, answering each vector it yields with ``matvec``."""
    try:
        q = next(steps)
        while True:
            q = steps.send(matvec(q))
    except StopIteration as done:
        return done.value


def lanczos_steps(dim: int, dtype: torch.dtype, device: torch.device, steps: int, *, seed: int = 0,
                  v0: Optional[torch.Tensor] = None, restart: bool = True,
                  stop: Optional[Callable[["Tridiagonal"], bool]] = None) -> Generator:
    """:func:`lanczos` as a generator: it yields each vector whose product with the operator it needs, is sent
    that product, and returns the :class:`Tridiagonal`. Several runs can so share batched products
    (:func:`landscape.hessian.batched.extreme_eigenpairs_batched`) and still follow exactly one run's steps."""
    steps = min(int(steps), dim)
    if steps < 1:
        raise LandscapeError(f"Lanczos needs at least one step; got {steps}")
    g = torch.Generator().manual_seed(int(seed))
    q = random_unit(dim, g, dtype, device) if v0 is None else (v0.double() / v0.double().norm()).to(device, dtype)
    Q = torch.empty((min(steps, 32), dim), dtype=dtype, device=device)
    alpha: list[float] = []
    beta: list[float] = []
    scale, eps = 0.0, torch.finfo(dtype).eps
    b, start = 0.0, 0
    for j in range(steps):
        if j == Q.shape[0]:  # grow the basis storage by doubling: a run that stops early never pays for `steps`
            Q = torch.cat([Q, torch.empty((min(steps, 2 * j) - j, dim), dtype=dtype, device=device)])
        Q[j] = q
        w = (yield q).to(device, dtype)
        # Scalars in float64: a float32 dot over a million terms would cost the Ritz values digits.
        a = float(q.double() @ w.double())
        w = w - a * q
        if j > 0 and beta[-1] != 0.0:
            w = w - beta[-1] * Q[j - 1]
        basis = Q[:j + 1]
        for _ in range(2):
            w = w - basis.T @ (basis @ w)
        b = float(w.double().norm())
        alpha.append(a)
        # ||T|| bound (Gershgorin), the scale for "negligible": the Hessian's own units.
        scale = max(scale, abs(a) + b + (beta[-1] if beta else 0.0), 1e-300)
        tri = Tridiagonal(torch.tensor(alpha, dtype=torch.float64), torch.tensor(beta, dtype=torch.float64),
                          Q[:j + 1], b, start)
        breakdown = b <= 10 * eps * scale
        if j + 1 == steps:
            return tri
        # At a breakdown every residual is ~0, so `stop` would always agree; the restart comes first, as it
        # may find further copies of an eigenvalue.
        if stop is not None and not (breakdown and restart) and stop(tri):
            return tri
        if not breakdown:
            q = w / b
            beta.append(b)
            continue
        # Invariant subspace found: every Ritz value so far is exact. Continue in the orthogonal complement.
        if not restart:
            return tri
        w = random_unit(dim, g, dtype, device)
        for _ in range(2):
            w = w - basis.T @ (basis @ w)
        norm = float(w.double().norm())
        if j + 1 >= dim or norm < 1e-6:  # the basis spans everything: nothing is left to explore
            return tri
        q = w / norm
        beta.append(0.0)
        start = j + 1
    return tri  # pragma: no cover - the loop always returns


def _ritz(tri: Tridiagonal) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ritz values (ascending), eigenvectors of T, and residual estimates ``|beta_m s_{m,i}|``."""
    theta, S = torch.linalg.eigh(tri.matrix())
    return theta, S, (tri.residual * S[-1, :]).abs()


def _pairs(tri: Tridiagonal, idx: list[int], theta, S, res, converged: bool) -> Eigenpairs:
    coeff = S[:, idx].to(tri.Q.device, tri.Q.dtype)
    vecs = coeff.T @ tri.Q
    vecs = vecs / vecs.double().norm(dim=1, keepdim=True).to(vecs.dtype)
    return Eigenpairs(theta[idx].clone(), vecs, res[idx].clone(), int(tri.alpha.numel()), converged)


def extreme_eigenpairs(op, top: int = 1, bottom: int = 0, *, tol: float = DEFAULT_TOL, max_iter: int | None = None,
                       seed: int = 0, v0: Optional[torch.Tensor] = None) -> tuple[Eigenpairs, Optional[Eigenpairs]]:
    """The ``top`` largest and ``bottom`` smallest eigenpairs (algebraic order) from one Lanczos run.

    A pair counts as converged when its residual is at most ``tol`` times the spectral scale (the largest
    ``|Ritz value|``): then the eigenvalue's error is about ``residual**2 / gap`` and the vector's angle
    ``residual / gap``. Relative to the scale, not to the value, because the smallest eigenvalue of a trained
    network is often near zero.

    Args:
        op: a :class:`~landscape.hessian.hvp.HessianOperator` or anything with ``.matvec``/``.dim``.
        top: how many of the largest eigenpairs (descending).
        bottom: how many of the smallest (ascending); 0 for none.
        tol: residual tolerance relative to the spectral scale.
        max_iter: the most HVPs (default ``max(100, 3 * (top + bottom) + 20)``, capped at ``op.dim``).
        seed: the start vector's seed.
        v0: a start vector instead (e.g. the top eigenvector at a neighbouring grid point, which saves steps when
            mapping curvature over a plane).

    Returns:
        ``(largest, smallest)``; ``smallest`` is None when ``bottom == 0``. ``converged`` says whether every
        requested pair met ``tol`` within ``max_iter`` steps (if not, the pairs are the best estimates).

    Raises:
        LandscapeError: ``top``/``bottom`` negative or more than the operator's dimension, bad ``tol``/``max_iter``.
    """
    matvec, dim, dtype, device = _operator_meta(op)
    return drive(extreme_eigenpairs_steps(dim, dtype, device, top, bottom, tol=tol, max_iter=max_iter, seed=seed,
                                          v0=v0), matvec)


def extreme_eigenpairs_steps(dim: int, dtype: torch.dtype, device: torch.device, top: int = 1, bottom: int = 0, *,
                             tol: float = DEFAULT_TOL, max_iter: int | None = None, seed: int = 0,
                             v0: Optional[torch.Tensor] = None) -> Generator:
    """:func:`extreme_eigenpairs` as a generator over its operator products (see :func:`lanczos_steps`);
    returns ``(largest, smallest)``."""
    if top < 0 or bottom < 0 or top + bottom == 0:
        raise LandscapeError(f"ask for at least one eigenvalue (top={top}, bottom={bottom}; both must be >= 0)")
    if max(top, bottom) > dim:
        raise LandscapeError(f"asked for {max(top, bottom)} eigenvalues but the operator has only {dim} dimensions; "
                             f"use at most {dim}")
    if not tol > 0:
        raise LandscapeError(f"tol must be positive; got {tol}")
    if max_iter is None:
        max_iter = max(DEFAULT_MAX_ITER, 3 * (top + bottom) + 20)
    if max_iter < max(top, bottom):
        raise LandscapeError(f"max_iter ({max_iter}) must be at least the number of eigenvalues asked for "
                             f"({max(top, bottom)})")

    def wanted(theta: torch.Tensor) -> list[int]:
        n = theta.numel()
        return list(range(n - 1, max(n - top, 0) - 1, -1)) + list(range(min(bottom, n)))

    def converged(tri: Tridiagonal) -> bool:
        n = tri.alpha.numel()
        if n < max(top, bottom):
            return False
        theta, _, res = _ritz(tri)
        scale = float(theta.abs().max())
        if not bool((res[wanted(theta)] <= tol * scale).all()):
            return False
        if tri.block_start == 0 or n >= dim:  # n == dim: the whole space is spanned, every Ritz pair is exact
            return True
        # After a restart the earlier blocks' Ritz pairs are exact, so they alone would pass; the new block must
        # also have converged at the wanted ends, or a second copy of an extreme eigenvalue could be missed.
        sub = Tridiagonal(tri.alpha[tri.block_start:], tri.beta[tri.block_start:], tri.Q[tri.block_start:],
                          tri.residual)
        th, _, r = _ritz(sub)
        ends = ([th.numel() - 1] if top else []) + ([0] if bottom else [])
        if not bool((r[ends] <= tol * scale).all()):
            return False
        # A block that reached the wanted set found another copy of an eigenvalue there; there may be more, so
        # go on until its own breakdown and a restart that adds nothing wanted.
        if top and float(th[-1]) >= float(theta[n - top]) - tol * scale:
            return False
        return not (bottom and float(th[0]) <= float(theta[bottom - 1]) + tol * scale)

    tri = yield from lanczos_steps(dim, dtype, device, max_iter, seed=seed, v0=v0, stop=converged)
    theta, S, res = _ritz(tri)
    ok = converged(tri)
    n = theta.numel()
    hi = _pairs(tri, list(range(n - 1, max(n - top, 0) - 1, -1)), theta, S, res, ok)
    lo = _pairs(tri, list(range(min(bottom, n))), theta, S, res, ok) if bottom else None
    return hi, lo


def top_eigenpairs(op, k: int = 1, *, tol: float = DEFAULT_TOL, max_iter: int | None = None,
                   seed: int = 0) -> Eigenpairs:
    """The ``k`` largest eigenvalues (descending) and their unit eigenvectors. See :func:`extreme_eigenpairs`."""
    return extreme_eigenpairs(op, top=k, tol=tol, max_iter=max_iter, seed=seed)[0]


def min_eigenpair(op, *, tol: float = DEFAULT_TOL, max_iter: int | None = None, seed: int = 0) -> Eigenpairs:
    """The smallest (most negative) eigenvalue and its eigenvector. See :func:`extreme_eigenpairs`."""
    return extreme_eigenpairs(op, top=0, bottom=1, tol=tol, max_iter=max_iter, seed=seed)[1]
