"""What every CLI shares: one-line errors with exit code 2, Ctrl-C without a traceback, graceful stops on
SIGTERM/SIGHUP/SIGUSR1 (exit 128 + the signal), float/grid flags."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from typing import Callable, NoReturn

from landscape import signals
from landscape.errors import LandscapeError
from landscape.paths import os_error_message


class Parser(argparse.ArgumentParser):
    """argparse with our exit code contract: usage errors are one line on stderr and exit 2."""

    # Flags whose values may start with '-' (``--x -1:1:51``), which argparse would take for an option.
    VALUE_FLAGS = ("--x", "--y", "--vmin", "--vmax", "--plane", "--record-grid")

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        joined, i = [], 0
        while i < len(args):
            if args[i] in self.VALUE_FLAGS and i + 1 < len(args) and args[i + 1][:1] == "-" and \
                    args[i + 1][1:2].isdigit() | (args[i + 1][1:2] == "."):
                joined.append(f"{args[i]}={args[i + 1]}")
                i += 2
            else:
                joined.append(args[i])
                i += 1
        return super().parse_known_args(joined, namespace)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None, prog: str = "landscape",
        resume_flag: str | None = None) -> int:
    """Call ``main(argv)``; turn bad input and OS errors into ``error: ...`` + exit 2, Ctrl-C into exit 130, and
    ``SIGTERM``/``SIGHUP``/``SIGUSR1`` into a graceful stop (:mod:`landscape.signals`) + exit 128 + the signal.

    Args:
        resume_flag: what to add to the command line to continue after a stop (``--resume`` for training);
            default: the same command continues by itself.
    """
    try:
        with signals.graceful():
            return main(argv)
    except LandscapeError as e:
        _say(f"{prog}: error: {e}")
        return 2
    except OSError as e:  # one not already turned into a LandscapeError where it happened; still one line
        _say(f"{prog}: error: " + (os_error_message(e.filename, e, "cannot access") if e.filename else
                                   f"{e.strerror or e}"))
        return 2
    except (MemoryError, RuntimeError) as e:
        kind = failure_kind(e)
        if kind is None:
            raise  # a bug: keep its traceback
        detail = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        if kind == "memory":
            _say(f"{prog}: error: out of memory ({detail}); what was finished is saved: free memory or pass a smaller "
                 f"--batch-size (or --samples), then run: {resume_command(prog, argv, resume_flag)}")
        else:
            _say(f"{prog}: error: another process of this torchrun job failed or left ({detail}); what was finished "
                 f"is saved: see the other ranks' messages, then run: {resume_command(prog, argv, resume_flag)}")
        return 2
    except signals.Stopped as e:
        if e.main:  # in a torchrun job rank 0 speaks for all
            _say(f"{prog}: {e.describe()}; to {'resume' if e.path else 'go on'}, run: "
                 f"{resume_command(prog, argv, resume_flag)}")
        return e.exit_code
    except KeyboardInterrupt:
        _say(f"\n{prog}: interrupted; finished points are saved, run the same command again to resume")
        return 130


def failure_kind(e: BaseException) -> str | None:
    """``memory`` for an allocation failure (Python's, torch's CPU allocator's, CUDA's), ``peer`` for a collective
    whose other ranks are gone (torch.distributed), else None (by name: this module never imports torch)."""
    name, module, text = type(e).__name__, type(e).__module__, str(e)
    if isinstance(e, MemoryError) or name == "OutOfMemoryError" or "can't allocate memory" in text \
            or "out of memory" in text.lower():
        return "memory"
    if module.startswith("torch") and name in ("DistBackendError", "DistNetworkError", "DistError", "DistStoreError"):
        return "peer"
    if "Connection closed by peer" in text or "Connection reset by peer" in text:  # gloo as a plain RuntimeError
        return "peer"
    return None


def finite_float(text: str) -> float:
    """argparse type: a finite number (``--vmin nan`` and ``--vmax inf`` are refused at the door)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number")
    if v != v or v in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return v


MAX_LEVELS = 200  # contour levels; more is unreadable, and matplotlib's time grows with each


def level_count(text: str) -> int:
    """argparse type for ``--levels``: an integer from 2 to :data:`MAX_LEVELS`."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    if not 2 <= v <= MAX_LEVELS:
        raise argparse.ArgumentTypeError(f"{v} is not between 2 and {MAX_LEVELS}")
    return v


def resume_command(prog: str, argv: list[str] | None, resume_flag: str | None = None) -> str:
    """The command line that continues this run: ``python -m PROG ARGS`` (+ ``resume_flag``), or, in a torchrun
    job, the same torchrun command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if resume_flag and resume_flag not in args:
        args.append(resume_flag)
    cmd = shlex.join(["python", "-m", prog, *args])
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return f"the same torchrun command again ({cmd.replace('python ', 'torchrun ... ', 1)})"
    return cmd


def _say(line: str) -> None:
    """A line on stderr, if there is still one (after SIGHUP the terminal may be gone)."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def add_scale_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("figure scale")
    g.add_argument("--log", action=argparse.BooleanOptionalAction, default=None,
                   help="log10 scale for loss values (default: linear, unless most of the surface lies above the "
                        "linear scale's cap; --no-log keeps it linear)")
    g.add_argument("--vmin", type=finite_float, default=None,
                   help="lowest value shown (default: the surface's minimum)")
    g.add_argument("--vmax", type=finite_float, default=None,
                   help="highest value shown (default: the 95th percentile, capped at max(10*min, min+10) and at a "
                        "recorded loss_cap, so the basin is visible)")
    g.add_argument("--levels", type=level_count, default=None,
                   help="number of contour levels (default: round values, log-spaced over a wide loss range)")
