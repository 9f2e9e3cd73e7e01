"""Filesystem helpers shared by the CLIs and the library (torch-free, so rendering may use them too)."""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import stat
import tempfile
from typing import IO, Iterator

from landscape.errors import LandscapeError


def ensure_writable_dir(out: str) -> None:
    """Create ``out`` if needed and check we can write there, before any long computation starts."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise LandscapeError(f"cannot create output folder {out!r} ({e.strerror}); pass a writable --out")
    if not os.access(out, os.W_OK | os.X_OK):
        raise LandscapeError(f"output folder {out!r} is not writable; pass a writable --out")


def shown(path: str) -> str:
    """``path`` as a message shows it: relative to the working directory when it lies below it, else absolute
    (``--out /tmp/x`` run from a project folder is reported as ``/tmp/x/...``, not ``../../tmp/x/...``)."""
    rel = os.path.relpath(path)
    return os.path.abspath(path) if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def list_snapshots(run_dir: str) -> list[tuple[int, str]]:
    """``(epoch, path)`` of a training run's ``epoch_NNN.pt`` snapshots, in epoch order."""
    found = []
    for p in glob.glob(os.path.join(glob.escape(run_dir), "epoch_*.pt")):
        m = re.search(r"epoch_(\d+)\.pt$", p)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


# What to do about each kind of OS error when writing an output; the rest get the generic advice.
_ADVICE = {
    errno.ENOSPC: "free some space (or pass another --out) and run the same command again",
    errno.EDQUOT: "free some space within your quota (or pass another --out) and run the same command again",
    errno.EACCES: "make the folder writable or pass another --out",
    errno.EPERM: "make the folder writable or pass another --out",
    errno.EROFS: "the file system is read-only; pass another --out",
    errno.EIO: "the disk or network file system failed; check it and run the same command again",
}


def os_error_message(path: str, e: OSError, action: str = "cannot write") -> str:
    """One line for an OS error on ``path``: what failed, the cause by name, what to do.

    HDF5 (through h5py) reports ``errno`` with a long multi-line text of its own; the cause is taken from the
    error number wherever there is one, so every source of the same error reads the same.
    """
    code = e.errno if isinstance(e.errno, int) else None
    cause = os.strerror(code) if code else (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
    name = f" ({errno.errorcode[code]})" if code in errno.errorcode else ""
    advice = _ADVICE.get(code, "check the disk and the folder's permissions, then run the same command again")
    return f"{action} {path!r}: {cause}{name}; {advice}"


def write_error(path: str, e: OSError, action: str = "cannot write") -> LandscapeError:
    """:func:`os_error_message` as the one error type the CLIs print on one line (exit code 2)."""
    return LandscapeError(os_error_message(path, e, action))


def check_name(name: str, flag: str = "--name") -> str:
    """``name`` if it is a plain file stem that stays inside the output folder, else a one-line error.

    The output folder may be shared (``/tmp``, a group folder): a stem with a path separator, ``..``, or a leading
    dot could write elsewhere or make hidden or odd names (``--name .`` gives ``..h5``).
    """
    bad = (not name or name in (".", "..") or name.startswith(".") or "/" in name or os.sep in name
           or (os.altsep or "/") in name or "\0" in name or len(name.encode(errors="replace")) > 200)
    if bad:
        raise LandscapeError(f"{flag} {name[:80]!r} is not a file stem: give a plain name without '/', '\\', a "
                             f"leading '.' or more than 200 bytes, e.g. {flag} resnet56_wide; the folder goes in --out")
    return name


def _temp_prefix(path: str) -> tuple[str, str]:
    folder, base = os.path.split(os.path.abspath(path))
    return folder, f".{base}."


def stale_temps(path: str) -> list[str]:
    """Temporary files or folders a killed writer of ``path`` left behind that this user owns."""
    folder, prefix = _temp_prefix(path)
    found = []
    for p in glob.glob(os.path.join(glob.escape(folder), glob.escape(prefix) + "*.tmp")):
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if st.st_uid == os.getuid() and (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            found.append(p)
    return found


def remove_stale_temps(path: str) -> None:
    """Remove :func:`stale_temps` (call only while holding ``path``'s lock: another writer's are then none)."""
    for p in stale_temps(path):
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            _remove(p)


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Write ``path`` whole or not at all: yields a temporary name to write to; on success the file is synced to
    disk and renamed to ``path``, on any failure (or interruption) it is removed. An OS error becomes a
    one-line :class:`LandscapeError` naming ``path``.

    The temporary name lies in a new private folder (mode 0700, an unpredictable name next to ``path``, so the
    rename stays atomic): in a folder others can write to, nobody can plant a link there for a library that opens
    the name to follow. The final rename replaces a link planted at ``path`` itself rather than following it.
    """
    folder, prefix = _temp_prefix(path)
    try:
        private = tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=folder)
    except OSError as e:
        raise write_error(path, e) from e
    tmp = os.path.join(private, os.path.basename(path))
    try:
        yield tmp
        _sync(tmp)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException as e:
        _as_write_error(path, e)
        raise
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _as_write_error(path: str, e: BaseException) -> None:
    """Raise the one-line :class:`LandscapeError` for writing ``path`` when an OS error lies behind ``e``; return
    (for the caller to re-raise ``e``) on Ctrl-C or a stop signal, and on an error that already says what is
    wrong."""
    cause = _os_cause(e) if isinstance(e, Exception) and not isinstance(e, LandscapeError) else None
    if cause is not None:
        raise write_error(path, cause) from e


def _os_cause(e: BaseException) -> OSError | None:
    """The OS error behind ``e``: itself, or one a library was handling when it failed in turn (matplotlib's PDF
    writer, cleaning up after a full disk, raises a zlib error that hides the ``ENOSPC``)."""
    for _ in range(8):
        if isinstance(e, OSError):
            return e
        e = e.__cause__ or e.__context__
        if e is None:
            return None
    return None


@contextlib.contextmanager
def atomic_open(path: str, mode: str = "w", **kw) -> Iterator[IO]:
    """Write ``path`` whole or not at all through an open file (``mode`` ``"w"`` or ``"wb"``, ``open``'s keywords).

    The temporary file is created exclusively under an unpredictable name next to ``path`` (``O_EXCL``: a link
    planted there is never followed) and written through that very descriptor; on success it is synced and renamed
    to ``path``, on any failure removed. An OS error becomes a one-line :class:`LandscapeError` naming ``path``.
    """
    try:
        f, tmp = _open_temp(path, mode, **kw)
    except OSError as e:
        raise write_error(path, e) from e
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), _umask_mode())  # mkstemp makes 0600; the result gets the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        _remove(tmp)
        _as_write_error(path, e)
        raise


def _open_temp(path: str, mode: str, **kw) -> tuple[IO, str]:
    """A new file next to ``path`` under an unpredictable name, created exclusively (mode 0600), and that name."""
    folder, prefix = _temp_prefix(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=folder)
    try:
        return os.fdopen(fd, mode, **kw), tmp
    except BaseException:
        os.close(fd)
        _remove(tmp)
        raise


def _sync(path: str) -> None:
    """Push a just-written file to the disk before it takes its final name: after a power cut the final name
    then holds the whole file, not an empty one."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass  # never there, or the disk is gone: nothing more to do about a temporary file
