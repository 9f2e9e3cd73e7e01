"""Curvature of the loss: Hessian-vector products, extreme eigenpairs (Lanczos), trace (Hutchinson), density (SLQ).

Usable on any ``nn.Module``::

    from landscape.hessian import HessianOperator, extreme_eigenpairs, hutchinson_trace
    op = HessianOperator(model, data.x, data.y, params="weights")
    top, low = extreme_eigenpairs(op, top=5, bottom=1, seed=0)
    tr = hutchinson_trace(op, samples=50, seed=0)

The operator reads the model's live parameters, so setting them to a perturbed point and calling again gives the
curvature there. ``python -m landscape.hessian --ckpt CKPT --out FILE.h5`` is the command-line front end.
"""

from landscape.hessian.density import Density, slq_density
from landscape.hessian.hvp import METHODS, PARAMS, HessianOperator, resolve_loss, select_parameters
from landscape.hessian.lanczos import (Eigenpairs, Tridiagonal, extreme_eigenpairs, lanczos, min_eigenpair,
                                       top_eigenpairs)
from landscape.hessian.trace import TraceEstimate, hutchinson_trace

__all__ = ["HessianOperator", "select_parameters", "resolve_loss", "PARAMS", "METHODS", "Eigenpairs", "Tridiagonal",
           "lanczos", "extreme_eigenpairs", "top_eigenpairs", "min_eigenpair", "TraceEstimate", "hutchinson_trace",
           "Density", "slq_density"]
