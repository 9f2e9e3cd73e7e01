"""Graceful stops: ``SIGTERM``, ``SIGHUP`` and ``SIGUSR1`` (what schedulers send before they kill a job) end a run
after the block in flight is written, with a word on what is saved and how to resume.

The CLIs run inside :func:`graceful`. While a surface is being computed (inside :func:`deferred`) a stop signal
is only noted, and the grid loop stops at the end of the block (every rank of a torchrun job at the same round),
raising :class:`Stopped`; anywhere else it raises :class:`Stopped` at once (once an import in progress is over),
and the ``finally`` blocks release the lock and remove temporary files. The CLI prints one line and exits with
128 + the signal number, as a shell reports a process killed by it (143 for ``SIGTERM``).

Only the first stop signal counts: a scheduler may signal both ``torchrun`` (which passes the signal on) and its
workers, and the second copy must not cut the block short. ``Ctrl-C`` (``SIGINT``) stays an immediate
``KeyboardInterrupt``; ``kill -9`` cannot be caught, and the surface file is crash-safe for it anyway.

Torch-free: the grid loop (``landscape.surface``) uses it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Iterator

STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGHUP", "SIGUSR1") if hasattr(signal, n))

_pending: int | None = None  # the first stop signal received while deferring
_swallowed: int | None = None  # a Stopped that Python reported as "Exception ignored" instead of raising it
_previous_hook = sys.unraisablehook  # what reports every other unraisable exception while graceful() runs
_deferring = 0  # depth of deferred() contexts


class Stopped(BaseException):
    """A run stopped by a signal. A ``BaseException`` like ``KeyboardInterrupt``: no ``except Exception`` on the
    way up swallows it.

    Attributes:
        signum: the signal; ``exit_code`` is 128 + it.
        path, saved, total: the surface file and its finished points when a grid stopped after a block (rank 0
            of a torchrun job; ``None`` elsewhere).
        main: whether this process speaks for the job (False on the ranks > 0 of a torchrun job).
    """

    def __init__(self, signum: int, path: str | None = None, saved: int | None = None, total: int | None = None,
                 main: bool = True):
        self.signum, self.path, self.saved, self.total, self.main = int(signum), path, saved, total, main
        super().__init__(self.describe())

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    def describe(self) -> str:
        """What happened and what is saved, e.g. ``stopped by SIGTERM after the block in flight: 120 of 225
        points are saved in 'plots/r.h5'``."""
        if self.path is None:
            return f"stopped by {self.name}"
        return (f"stopped by {self.name} after the block in flight: {self.saved} of {self.total} points are saved "
                f"in {self.path!r}")


def _handler(signum: int, frame) -> None:
    global _pending
    if _deferring:
        if _pending is None:
            _pending = signum
        return
    if _unsafe(frame):
        # Ask again in a moment, when that code is over.
        t = threading.Timer(0.05, os.kill, (os.getpid(), signum))
        t.daemon = True
        t.start()
        return
    raise Stopped(signum)


# Code in which an exception raised by the handler does harm. Inside an import it leaves a half-initialised
# module behind (a stop during ``import torch`` made torch fail, or crash, at its next use). In logging's and
# threading's lock code, which Python also runs as fork hooks and finalizers, it is printed as "Exception ignored
# in ..." and swallowed, and the run went on to exit 0 (both found by bench/soak.py).
_UNSAFE_FILES = (os.sep + os.path.join("logging", "__init__.py"), os.sep + "threading.py", os.sep + "weakref.py")


def _unsafe(frame) -> bool:
    """Whether ``frame`` runs inside an ``import`` (importlib's frames are on the stack) or in lock code."""
    if frame is not None and frame.f_code.co_filename.endswith(_UNSAFE_FILES):
        return True
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


@contextlib.contextmanager
def graceful() -> Iterator[None]:
    """Turn the stop signals into :class:`Stopped` (deferred to the end of a block inside :func:`deferred`).

    Only signals whose handler is the default one are taken, and the previous handlers come back on exit: a
    program that handles them itself (a notebook kernel, a framework) or ignores them (``nohup``) keeps doing
    so. Outside the main thread nothing can be installed and nothing is.

    Usable around :func:`landscape.compute` from a script that runs under a scheduler.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _swallowed, _previous_hook
    previous = {}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, _handler)
    old_hook = _previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable
    try:
        yield
        if _swallowed:
            raise Stopped(_swallowed)
    finally:
        sys.unraisablehook = old_hook
        for sig, old in previous.items():
            signal.signal(sig, old)
        _swallowed = None


def _unraisable(info) -> None:
    """A Stopped raised by the handler where Python cannot raise (a finalizer, a fork hook, a callback from C) is
    reported here and dropped: note it, so that the run stops at the next block or on the way out instead of
    going on to exit 0 as if no signal had come."""
    global _swallowed
    if isinstance(info.exc_value, Stopped):
        if _swallowed is None:
            _swallowed = info.exc_value.signum
        return
    _previous_hook(info)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within: a stop signal is noted (see :func:`pending`), not raised, so the work in flight completes."""
    global _deferring, _pending
    if _swallowed and not _deferring:  # a stop whose exception was swallowed (see _unraisable): no new work
        raise Stopped(_swallowed)
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        sig = 0
        if not _deferring:
            sig, _pending = _pending or 0, None
    if sig:  # noted after the last look (the work is done): stop now rather than lose it
        raise Stopped(sig)


def pending() -> int:
    """The stop signal noted since :func:`deferred` began (or swallowed before), 0 if none."""
    return _pending or _swallowed or 0
