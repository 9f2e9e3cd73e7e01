"""Evaluation of loss and accuracy at grid points theta* + alpha*delta + beta*eta.

Everything stays on the evaluation device: theta*, delta and eta are copied there once, each point's weights
are built there (never on the CPU and copied over), and the data was put there once (or is streamed from
pinned host memory when it does not fit). No DataLoader: batches are slices of a resident tensor.

Modules: ``device`` (device, precision, batch sizes), ``perturb`` (theta* + a*dx + b*dy on a private copy of the
model), ``passes`` (one pass of the data: loss sums, BN recompute), ``engines`` (the loop and vmap engines),
``driver`` (:class:`PlaneEvaluator`: engine choice, memory policy, fallbacks).
"""

from landscape.evaluate.device import (BN_MODES, PRECISIONS, default_batch_size, gpu_bytes_per_image,
                                       plan_gpu_step, precision_context, resolve_device)
from landscape.evaluate.driver import PlaneEvaluator
from landscape.evaluate.passes import loss_and_accuracy, loss_sums, recompute_bn_statistics

__all__ = ["PlaneEvaluator", "loss_and_accuracy", "loss_sums", "recompute_bn_statistics", "precision_context",
           "resolve_device", "default_batch_size", "plan_gpu_step", "gpu_bytes_per_image", "PRECISIONS", "BN_MODES"]
