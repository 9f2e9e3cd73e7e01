"""Fakes shared by several test modules (not a test module itself)."""

from __future__ import annotations

import errno as errnos
import os


class FailingFile:
    """A file whose writes fail with ``OSError(errno)`` once ``room`` bytes are in it, as a full (ENOSPC) or
    failing (EIO) disk does: the part that fits lands on the disk first.

    Patch it in where output files are opened: ``monkeypatch.setattr(landscape.paths, "_open_temp",
    failing_temp(1000))``.
    """

    def __init__(self, f, room: int, errno: int = errnos.ENOSPC):
        self.f, self.room, self.errno = f, room, errno

    def write(self, data):
        if self.room < len(data):
            self.f.write(data[:self.room])
            self.room = 0
            self.f.flush()
            raise OSError(self.errno, os.strerror(self.errno))
        self.room -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def failing_temp(room: int, errno: int = errnos.ENOSPC):
    """A stand-in for ``landscape.paths._open_temp`` whose files fail as :class:`FailingFile` after ``room`` bytes."""
    import landscape.paths as paths

    real = paths._open_temp

    def open_temp(path, mode, **kw):
        f, tmp = real(path, mode, **kw)
        return FailingFile(f, room, errno), tmp

    return open_temp
