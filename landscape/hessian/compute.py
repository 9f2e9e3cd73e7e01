"""Curvature of a checkpoint: the library function behind ``python -m landscape.hessian``.

Usable from a notebook::

    from landscape.hessian.compute import compute_curvature
    res = compute_curvature("checkpoints/resnet20_digits.pt", top=2, samples=256, out="plots/r20_hessian.h5")
    res.eigenvalues, res.min_eigenvalue, res.trace, res.trace_se

For curvature at points other than a checkpoint's (a grid of lambda_max/lambda_min maps), build a
:class:`~landscape.hessian.hvp.HessianOperator` once and move the model's parameters between calls to
:func:`curvature_at`.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from landscape.errors import LandscapeError
from landscape.hessian.density import Density, slq_density
from landscape.hessian.hvp import PARAMS, HessianOperator
from landscape.hessian.io import write_hessian_file
from landscape.hessian.lanczos import DEFAULT_TOL, Eigenpairs, extreme_eigenpairs
from landscape.hessian.trace import TraceEstimate, hutchinson_trace


@dataclass
class Curvature:
    """What one curvature computation found (the eigenvectors stay in ``top``/``smallest``)."""

    top: Eigenpairs
    smallest: Optional[Eigenpairs]
    trace: Optional[TraceEstimate] = None
    density: Optional[Density] = None
    hvps: int = 0
    seconds: float = 0.0
    path: str = ""
    settings: dict = field(default_factory=dict)

    @property
    def eigenvalues(self) -> list[float]:
        return [float(v) for v in self.top.eigenvalues]

    @property
    def min_eigenvalue(self) -> Optional[float]:
        return float(self.smallest.eigenvalues[0]) if self.smallest is not None else None


def curvature_at(op: HessianOperator, top: int = 1, smallest: bool = True, *, trace_samples: int = 0,
                 density_steps: int = 0, density_runs: int = 1, tol: float = DEFAULT_TOL,
                 max_iter: int | None = None, seed: int = 0, v0: torch.Tensor | None = None) -> Curvature:
    """Eigenpairs (one Lanczos run), trace and density of ``op`` at the model's current parameters.

    For a curvature map, move the model's parameters (in place, under ``torch.no_grad()``) to each point and call
    this again with the same ``op``; ``v0`` (e.g. the previous point's top eigenvector) can shorten the Lanczos run.

    Seeds: Lanczos uses ``seed``, the trace probes ``seed + 1``, density runs ``seed + 2, ...``, so each part is
    reproducible on its own and no two parts share random vectors.
    """
    if trace_samples < 0:
        raise LandscapeError(f"--trace-samples must be >= 0 (0 skips the trace); got {trace_samples}")
    t0, calls0 = time.perf_counter(), op.calls
    hi, lo = extreme_eigenpairs(op, top=top, bottom=1 if smallest else 0, tol=tol, max_iter=max_iter, seed=seed,
                                v0=v0)
    tr = hutchinson_trace(op, trace_samples, seed=seed + 1) if trace_samples else None
    dens = slq_density(op, density_steps, density_runs, seed=seed + 2) if density_steps else None
    return Curvature(hi, lo, tr, dens, op.calls - calls0, time.perf_counter() - t0)


def compute_curvature(ckpt: str, *, arch: str | None = None, model: str | None = None, normalization: str = "default",
                      data: str = "digits", split: str = "train",
                      samples: int | None = None, batch_size: int | None = None, params: str = "weights",
                      top: int = 1, trace_samples: int = 50, density: bool = False, density_steps: int = 60,
                      density_runs: int = 1, tol: float = DEFAULT_TOL, max_iter: int | None = None, seed: int = 0,
                      device: str = "auto", method: str = "double_backward", out: str | None = None,
                      trust: bool = False, loss: str = "cross_entropy") -> Curvature:
    """Load a checkpoint and data, compute the curvature at the checkpoint, and write ``out`` (if given).

    Arguments mirror the CLI flags (``model``: ``--model``, a torchvision/timm/factory spec). Bad input fails
    with a one-line :class:`LandscapeError` before the first HVP.
    """
    from landscape.checkpoints import load_checkpoint
    from landscape.data import load_data
    from landscape.datasets.normalization import recorded_for
    from landscape.evaluate import resolve_device

    if params not in PARAMS:
        raise LandscapeError(f"unknown --params {params!r}; valid: {', '.join(PARAMS)}")
    if top < 1:
        raise LandscapeError(f"--top must be at least 1; got {top}")
    if trace_samples < 0:
        raise LandscapeError(f"--trace-samples must be >= 0 (0 skips the trace); got {trace_samples}")
    if density and (density_steps < 1 or density_runs < 1):
        raise LandscapeError(f"--density-steps and --density-runs must be >= 1; got {density_steps}, {density_runs}")
    if out is not None:
        folder = os.path.dirname(os.path.abspath(out))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK | os.X_OK):
            raise LandscapeError(f"cannot write {out!r}: folder {folder!r} is missing or not writable")
    dev = resolve_device(device)
    model, info = load_checkpoint(ckpt, arch, trust=trust, model=model)
    d = load_data(data, split, samples=samples, device=dev, in_channels=info["in_channels"],
                  normalization=normalization, recorded_normalization=recorded_for(info))
    model = model.to(dev)
    op = HessianOperator(model, d.x, d.y, loss=loss, params=params, batch_size=512 if batch_size is None else batch_size,
                         method=method)
    if top > op.dim:
        raise LandscapeError(f"--top {top} exceeds the {op.dim} parameters selected by --params {params}; "
                             f"use at most {op.dim}")
    res = curvature_at(op, top, True, trace_samples=trace_samples, density_steps=density_steps if density else 0,
                       density_runs=density_runs, tol=tol, max_iter=max_iter, seed=seed)
    res.settings = dict(loss=str(loss), ckpt=os.path.abspath(ckpt), sha256=info["sha256"], arch=info["arch"], dataset=d.name,
                        split=split, n_samples=len(d), params=params, n_params=op.dim, seed=seed,
                        batch_size=op.batch_size, method=method, tol=tol, iterations=res.top.iterations,
                        converged=bool(res.top.converged), hvps=res.hvps, seconds=res.seconds,
                        trace_probes=trace_samples, torch_version=torch.__version__, device=str(dev),
                        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    if out is not None:
        res.path = write_curvature(out, op, res)
    return res


def write_curvature(out: str, op: HessianOperator, res: Curvature) -> str:
    """Store ``res`` in the curvature file layout (eigenvectors over all named parameters)."""
    names, _ = op.full_direction(torch.zeros(op.dim, dtype=op.dtype, device=op.device))
    selected = [n in set(op.names) for n in names]
    vecs = [op.full_direction(v)[1] for v in res.top.eigenvectors]
    lo = res.smallest
    dens = None
    if res.density is not None:
        dn = res.density
        dens = {"grid": dn.grid, "density": dn.density, "nodes": dn.nodes, "weights": dn.weights, "sigma": dn.sigma}
    return write_hessian_file(
        out, eigenvalues=res.top.eigenvalues.tolist(), residuals=res.top.residuals.tolist(), eigenvectors=vecs,
        names=names, selected=selected, min_eigenvalue=res.min_eigenvalue,
        min_residual=float(lo.residuals[0]) if lo is not None else None,
        min_eigenvector=op.full_direction(lo.eigenvectors[0])[1] if lo is not None else None,
        trace=res.trace.trace if res.trace else None, trace_se=res.trace.se if res.trace else None,
        trace_samples=res.trace.samples if res.trace else None, density=dens, attrs=res.settings)
