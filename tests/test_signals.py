"""Graceful stops: SIGTERM/SIGHUP/SIGUSR1 end a grid after the block in flight is written (Stopped, exit 128 +
the signal), anywhere else at once; handlers others installed (or SIG_IGN) are left alone."""

import logging
import os
import signal
import threading

import numpy as np
import pytest

from landscape import signals
from landscape.cli import run
from landscape.surface import SurfaceWriter, compute_surface, parse_grid, read_surface
from test_surface import DIRS, _fake_eval, _settings


@pytest.fixture(autouse=True)
def default_handlers():
    """Start each test from the default handlers: under ``nohup`` SIGHUP is ignored, and graceful() rightly
    leaves an ignored signal alone, which is not what these tests are about."""
    before = {s: signal.signal(s, signal.SIG_DFL) for s in signals.STOP_SIGNALS}
    yield
    for s, h in before.items():
        signal.signal(s, h)


def _signalling_eval(at_call: int, *sigs):
    """The fake evaluator, sending ``sigs`` to this process during its ``at_call``-th call (a block in flight)."""
    calls = [0]

    def ev(coords):
        calls[0] += 1
        if calls[0] == at_call:
            for s in sigs:
                os.kill(os.getpid(), s)
        return _fake_eval([])(coords)

    return ev, calls


@pytest.mark.parametrize("sig", signals.STOP_SIGNALS)
def test_a_signal_during_a_block_stops_after_it_is_written(tmp_path, sig):
    p = str(tmp_path / "s.h5")
    x, y = parse_grid("-1:1:5"), parse_grid("-1:1:4")
    ev, calls = _signalling_eval(3, sig)
    with signals.graceful():
        with pytest.raises(signals.Stopped) as e:
            with SurfaceWriter(p, x, y, _settings(), DIRS, DIRS) as w:
                compute_surface(w, ev, block_size=3, progress=False)
    assert calls[0] == 3  # the block in flight finished, no further block started
    st = e.value
    assert (st.signum, st.exit_code, st.saved, st.total, st.path) == (sig, 128 + sig, 9, 20, p)
    assert st.describe() == (f"stopped by {signal.Signals(sig).name} after the block in flight: 9 of 20 points "
                             f"are saved in {p!r}")
    assert not os.path.exists(p + ".lock")
    s = read_surface(p)
    assert s.done["train"].sum() == 9  # all three blocks, the one in flight included
    xx, yy = np.meshgrid(x, y)
    np.testing.assert_array_equal(s.values["train_loss"].reshape(-1)[:9], (xx * 10 + yy).reshape(-1)[:9])
    with SurfaceWriter(p, x, y, _settings()) as w:  # and it resumes to the uninterrupted surface
        assert compute_surface(w, _fake_eval([]), block_size=3, progress=False) == 11
    np.testing.assert_array_equal(read_surface(p).values["train_loss"], xx * 10 + yy)


def test_only_the_first_signal_counts_while_a_block_is_in_flight(tmp_path):
    """A scheduler may signal torchrun (which passes it on) and the workers: the second copy must not cut the
    block short, and the first names the stop."""
    p = str(tmp_path / "s.h5")
    x = parse_grid("-1:1:4")
    ev, calls = _signalling_eval(1, signal.SIGTERM, signal.SIGTERM, signal.SIGUSR1)
    with signals.graceful(), pytest.raises(signals.Stopped) as e:
        with SurfaceWriter(p, x, x, _settings(), DIRS, DIRS) as w:
            compute_surface(w, ev, block_size=5, progress=False)
    assert e.value.signum == signal.SIGTERM and e.value.saved == 5 and calls[0] == 1


def test_outside_a_grid_a_signal_stops_at_once_and_handlers_come_back():
    before = {s: signal.getsignal(s) for s in signals.STOP_SIGNALS}
    with pytest.raises(signals.Stopped) as e:
        with signals.graceful():
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(10 ** 6):  # the handler runs at the next bytecode; this line is never finished
                pass
            pytest.fail("not stopped")
    assert e.value.exit_code == 129 and e.value.describe() == "stopped by SIGHUP"
    assert {s: signal.getsignal(s) for s in signals.STOP_SIGNALS} == before


def test_handlers_of_others_are_left_alone():
    seen = []
    old_usr1 = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    old_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
    try:
        with signals.graceful():
            os.kill(os.getpid(), signal.SIGUSR1)
            os.kill(os.getpid(), signal.SIGHUP)
        assert seen == [signal.SIGUSR1]
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, old_usr1)
        signal.signal(signal.SIGHUP, old_hup)


def test_a_signal_after_the_last_look_still_stops(tmp_path):
    """Noted after the loop's last check (the grid is complete): the run still stops, the surface complete."""
    p = str(tmp_path / "s.h5")
    x = parse_grid("-1:1:3")
    with SurfaceWriter(p, x, x, _settings(), DIRS, DIRS) as w:
        with signals.graceful(), pytest.raises(signals.Stopped) as e:
            with signals.deferred():
                compute_surface(w, _fake_eval([]), block_size=9, progress=False, stop=lambda: 0)
                os.kill(os.getpid(), signal.SIGTERM)
    assert e.value.signum == signal.SIGTERM and read_surface(p).done["train"].all()


def test_cli_stop_message_and_exit_code(capsys, monkeypatch):
    """What the CLI prints for a stop: one line, what is saved and the command that resumes; exit 128 + signal."""
    def main(argv):
        raise signals.Stopped(signal.SIGTERM, "plots/r.h5", 120, 225)

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert run(main, ["--ckpt", "my model.pt", "--x", "-1:1:15"], prog="landscape.plot") == 143
    err = capsys.readouterr().err.strip()
    assert err == ("landscape.plot: stopped by SIGTERM after the block in flight: 120 of 225 points are saved in "
                   "'plots/r.h5'; to resume, run: python -m landscape.plot --ckpt 'my model.pt' --x -1:1:15")
    monkeypatch.setenv("WORLD_SIZE", "8")
    assert run(main, ["--ckpt", "m.pt"], prog="landscape.plot") == 143
    assert "to resume, run: the same torchrun command again (torchrun ... -m landscape.plot --ckpt m.pt)" in \
        capsys.readouterr().err

    def rank1(argv):
        raise signals.Stopped(signal.SIGUSR1, main=False)

    assert run(rank1, [], prog="landscape.plot") == 138 and capsys.readouterr().err == ""  # rank 0 speaks

    def training(argv):
        raise signals.Stopped(signal.SIGHUP)

    monkeypatch.delenv("WORLD_SIZE")
    assert run(training, ["--out", "runs/a"], prog="landscape.train", resume_flag="--resume") == 129
    assert capsys.readouterr().err.strip() == ("landscape.train: stopped by SIGHUP; to go on, run: python -m "
                                               "landscape.train --out runs/a --resume")


def test_a_signal_during_an_import_waits_for_the_import(tmp_path, monkeypatch):
    """Raised inside an import, Stopped would leave a half-initialised module (seen with torch at start-up: it
    then failed or crashed at its next use). The stop comes once the import is over, the module whole."""
    import sys
    import time

    (tmp_path / "slow_module_for_signals.py").write_text(
        "import os, signal, time\n"
        "os.kill(os.getpid(), signal.SIGTERM)\n"
        "for _ in range(10 ** 6):\n"
        "    pass\n"
        "time.sleep(0.1)\n"
        "complete = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(signals.Stopped) as e:
        with signals.graceful():
            import slow_module_for_signals  # noqa: F401
            time.sleep(2)  # the signal, asked again, arrives here
            pytest.fail("not stopped")
    assert e.value.signum == signal.SIGTERM
    assert sys.modules["slow_module_for_signals"].complete
    del sys.modules["slow_module_for_signals"]


def test_a_stop_swallowed_by_python_still_stops_the_run():
    """A Stopped raised where Python cannot raise (here a finalizer; in the soak test, logging's fork hook) is
    printed as "Exception ignored" and dropped; the run went on and exited 0. Now it is noted: no new block
    starts, and the run ends with Stopped on the way out."""
    class Finalized:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10 ** 5):  # the handler runs here, inside the finalizer
                pass

    went_on = False
    with pytest.raises(signals.Stopped) as e:
        with signals.graceful():
            Finalized()  # dropped at once: its __del__ runs and its Stopped is swallowed
            went_on = True
            assert signals.pending() == signal.SIGTERM
            with pytest.raises(signals.Stopped):
                with signals.deferred():
                    pytest.fail("a block started after a stop")
    assert went_on and e.value.signum == signal.SIGTERM
    assert signals.pending() == 0  # nothing carried over to the next run in this process


def test_no_stop_is_raised_in_lock_code():
    """logging's and threading's lock code (run by Python as fork hooks) would swallow it: asked again later."""
    import types

    def frame(path, back=None):
        return types.SimpleNamespace(f_code=types.SimpleNamespace(co_filename=path), f_back=back)

    assert signals._unsafe(frame(os.path.join(os.path.dirname(logging.__file__), "__init__.py")))
    assert signals._unsafe(frame(threading.__file__))
    assert signals._unsafe(frame("/x/mine.py", frame("<frozen importlib._bootstrap>")))
    assert not signals._unsafe(frame("/x/mine.py", frame("/x/logging_helpers.py")))
