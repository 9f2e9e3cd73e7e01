"""Safe HDF5 access: a forked probe before reading files that may be damaged, opening with one-line errors, and
the writer's lock file.

Torch-free.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from typing import Callable

import h5py

from landscape.errors import LandscapeError
from landscape.paths import write_error
from landscape.surface.layout import attr_value, touch_everything

__all__ = ["probe_h5", "open_h5", "attr_value", "FileLock"]


def probe_h5(path: str, timeout: float | None = None, touch: Callable[[str], None] | None = None) -> None:
    """Read ``path`` once in a forked child first: a damaged HDF5 file can crash the HDF5 C library (a
    segmentation fault, found by fuzzing) or make it loop, which no ``try`` can catch. A crash or hang in the
    child becomes a one-line :class:`LandscapeError`; anything else is left to the real read, which then
    behaves exactly as the child did. No-op where ``fork`` does not exist.
    """
    if not hasattr(os, "fork") or not os.path.isfile(path):
        return
    if timeout is None:  # generous for big direction sets on slow disks; a damaged file loops far longer
        timeout = 20.0 + os.path.getsize(path) / 50e6
    pid = os.fork()
    if pid == 0:  # child: never returns, never runs the parent's atexit handlers or flushes its buffers
        code = 0
        try:
            import faulthandler

            faulthandler.disable()  # a crash here is expected and reported by the parent, not dumped
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)  # and HDF5's own error stack is noise for a file we are only probing
            (touch or touch_everything)(path)
        except BaseException:  # noqa: BLE001 - a Python-level error is reproduced by the parent's own read
            code = 3
        os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise LandscapeError(f"{path!r} is a damaged HDF5 file (reading it did not finish in {timeout:.0f} s); "
                                 "delete it to start over, or pass another --name")
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        raise LandscapeError(f"{path!r} is a damaged HDF5 file (the HDF5 library crashed reading it, signal "
                             f"{os.WTERMSIG(status)}); delete it to start over, or pass another --name")


def open_h5(path: str, mode: str, probe: bool = True) -> h5py.File:
    """Open ``path`` (probed first unless ``probe=False``); a file that is not HDF5 is a one-line error."""
    if not os.path.exists(path):
        raise LandscapeError(f"surface file not found: {path!r}")
    if probe:  # files this process just checked or wrote itself need no second probe (it re-reads everything)
        probe_h5(path)
    try:
        # Readers skip HDF5's own file lock so a figure can be drawn while a run is still writing; writers are
        # serialised by our lock file (FileLock), which gives a clear message instead of HDF5's.
        if mode == "r":
            return h5py.File(path, mode, locking=False)
        return _open_for_writing(path) if mode == "r+" else h5py.File(path, mode)
    except (OSError, ValueError) as e:
        if isinstance(e, OSError) and isinstance(e.errno, int) and e.errno:
            # the system refused (permissions, read-only file system, I/O error): say that, not "corrupt"
            raise write_error(path, e, "cannot open" if mode == "r" else "cannot open for writing") from e
        raise LandscapeError(f"{path!r} is not a readable HDF5 file (corrupt or truncated?): "
                             f"{str(e).splitlines()[0][:160]}; delete it to start over, or pass another --name")


def _open_for_writing(path: str) -> h5py.File:
    """``h5py.File(path, "r+")`` without HDF5's data sieving.

    Why: a small write into a contiguous dataset goes through a 64 KiB sieve buffer that HDF5 reads and writes
    back whole, so each finished block rewrote up to 64 KiB per dataset however few points it held. Without it
    a block writes just its own bytes.
    """
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fclose_degree(h5py.h5f.CLOSE_STRONG)  # as h5py.File does: closing the file closes everything in it
    fapl.set_sieve_buf_size(0)
    return h5py.File(h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR, fapl=fapl))


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``<path>.lock``: one writer per surface file.

    The kernel drops the lock when the process dies (even on ``kill -9``), so a crashed run never leaves a
    stale lock behind. The lock file is removed on release.
    """

    def __init__(self, path: str):
        self.path = f"{path}.lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            return
        while True:
            try:
                # O_NOFOLLOW: a link planted at the lock's name (a shared folder) is refused, never truncated
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise LandscapeError(f"lock file {self.path!r} is a symbolic link, which this tool never makes: "
                                         "someone else put it there; remove it and run again")
                raise LandscapeError(f"cannot create lock file {self.path!r} ({e.strerror}); is --out writable?")
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                os.close(fd)  # a hard link to another file would have us write into that file
                raise LandscapeError(f"lock file {self.path!r} is not a plain file of its own (a hard link or "
                                     "a device), which this tool never makes: remove it and run again")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                try:
                    with open(self.path) as f:
                        holder = f.read().strip()
                except OSError:
                    holder = "?"
                raise LandscapeError(f"{self.path[:-5]!r} is being written by another process (pid {holder}); "
                                     "wait for it to finish, or use another --name")
            # The holder before us may have unlinked the file between our open and our flock: then we locked
            # an orphan inode and must try again on the current file.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                try:
                    os.ftruncate(fd, 0)
                    os.write(fd, str(os.getpid()).encode())
                except OSError:
                    pass  # a full disk: the pid only helps the message of a refused second writer
                self.fd = fd
                return
            os.close(fd)

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        if self.fd is not None:
            try:
                os.unlink(self.path)  # while still holding the lock (see acquire)
            except OSError:  # gone already, or the disk failed: the lock itself goes with the fd
                pass
            os.close(self.fd)
            self.fd = None
