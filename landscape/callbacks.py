"""Landscapes through training from PyTorch Lightning and the HuggingFace ``Trainer`` (both optional extras): a
:class:`landscape.movie.Recorder` called every N epochs or steps.

    trainer = lightning.Trainer(callbacks=[landscape.callbacks.lightning_callback(data=(x, y), every_n_epochs=1)])
    trainer = transformers.Trainer(..., callbacks=[landscape.callbacks.hf_callback(data=batch, every_n_steps=100)])

Each takes the :class:`~landscape.movie.Recorder`'s keywords (``path``, ``x``, ``y``, ``samples``, ``tolerance``,
...). The recorder is made at the first frame, on the model the trainer trains; a frame is also recorded at the
start of training (step or epoch 0), so the first frame is the initialization.
"""

from __future__ import annotations

from typing import Any

from landscape.errors import LandscapeError


def _every(every_n_epochs: int | None, every_n_steps: int | None) -> tuple[str, int]:
    if (every_n_epochs is None) == (every_n_steps is None):
        raise LandscapeError("pass one of every_n_epochs= or every_n_steps=")
    n = every_n_epochs if every_n_epochs is not None else every_n_steps
    if not isinstance(n, int) or n < 1:
        raise LandscapeError(f"every_n_epochs / every_n_steps must be a positive integer; got {n!r}")
    return ("epoch", n) if every_n_epochs is not None else ("step", n)


def lightning_callback(data: Any, every_n_epochs: int | None = 1, every_n_steps: int | None = None, **recorder: Any):
    """A ``lightning.pytorch.Callback`` (or ``pytorch_lightning``'s) recording the module's landscape every N epochs
    (at the end of each) or N optimizer steps."""
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback
        except ImportError:
            raise LandscapeError("lightning_callback needs PyTorch Lightning, which is not installed; pip install "
                                 "lightning")
    unit, n = _every(None if every_n_steps is not None else every_n_epochs, every_n_steps)

    class LandscapeCallback(Callback):
        def __init__(self):
            self.recorder = None

        def _record(self, module, step: int) -> None:
            if self.recorder is None:
                from landscape.movie import Recorder

                self.recorder = Recorder(module, data, unit=unit, **recorder)
            self.recorder.record(step)

        def on_train_start(self, trainer, pl_module):
            if trainer.is_global_zero:
                self._record(pl_module, trainer.current_epoch if unit == "epoch" else trainer.global_step)

        def on_train_epoch_end(self, trainer, pl_module):
            if unit == "epoch" and trainer.is_global_zero and (trainer.current_epoch + 1) % n == 0:
                self._record(pl_module, trainer.current_epoch + 1)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if unit == "step" and trainer.is_global_zero and trainer.global_step % n == 0:
                self._record(pl_module, trainer.global_step)

    return LandscapeCallback()


def hf_callback(data: Any, every_n_epochs: int | None = None, every_n_steps: int | None = 100, **recorder: Any):
    """A ``transformers.TrainerCallback`` recording the model's landscape every N optimizer steps (or epochs)."""
    try:
        from transformers import TrainerCallback
    except ImportError:
        raise LandscapeError("hf_callback needs transformers, which is not installed; pip install transformers")
    unit, n = _every(every_n_epochs, None if every_n_epochs is not None else every_n_steps)

    class LandscapeTrainerCallback(TrainerCallback):
        def __init__(self):
            self.recorder = None

        def _record(self, model, step: int) -> None:
            if self.recorder is None:
                from landscape.movie import Recorder

                self.recorder = Recorder(model, data, unit=unit, **recorder)
            was = model.training
            try:
                self.recorder.record(step)
            finally:
                model.train(was)

        def on_train_begin(self, args, state, control, model=None, **kw):
            if state.is_world_process_zero and model is not None:
                self._record(model, 0)

        def on_step_end(self, args, state, control, model=None, **kw):
            if unit == "step" and state.is_world_process_zero and model is not None and state.global_step % n == 0:
                self._record(model, state.global_step)

        def on_epoch_end(self, args, state, control, model=None, **kw):
            epoch = int(round(state.epoch or 0))
            if unit == "epoch" and state.is_world_process_zero and model is not None and epoch % n == 0:
                self._record(model, epoch)

    return LandscapeTrainerCallback()
