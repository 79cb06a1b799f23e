"""Running out of disk space: recognising it, and leaving an HDF5 file safely when it happens.

HDF5 reports a full device as a ``RuntimeError`` / ``OSError`` whose text carries
``errno = 28``; once a write failed, closing the file fails too (its metadata cache cannot be
flushed) and h5py's later clean-up of the half-closed file crashes the interpreter
(a segmentation fault). :func:`detach` points the file's descriptor at ``/dev/null`` first, so
the close succeeds and writes nothing more: the file on disk stays as its last successful flush
left it, exactly as after a kill, which the store's crash safety already covers (committed rows
are kept and a resume continues from them).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re

import h5py

#: errno values meaning "the device (or this file's quota / size limit) is full".
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_CODES = "|".join(str(e) for e in sorted(NO_SPACE_ERRNOS))
_TEXT = re.compile(
    rf"errno\s*=\s*({_CODES})\b|No space left on device|Disk quota exceeded|File too large"
)


def is_no_space(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from or during) is a full device.

    Examples
    --------
    >>> is_no_space(OSError(28, "No space left on device"))
    True
    >>> is_no_space(RuntimeError("Can't flush cache (file write failed: errno = 28, ...)"))
    True
    >>> is_no_space(OSError(2, "No such file or directory"))
    False
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
            return True
        if isinstance(exc, (OSError, RuntimeError)) and _TEXT.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def detach(f: h5py.File) -> None:
    """Close an HDF5 file whose writes failed for lack of space, writing nothing more to it.

    Its descriptor is pointed at ``/dev/null`` and the file closed (what HDF5 still wanted to
    flush goes nowhere). Without this, the failed close leaves h5py objects that crash the
    interpreter when collected.
    """
    if not f.id.valid:
        return
    with contextlib.suppress(Exception):
        fd = f.id.get_vfd_handle()
        if isinstance(fd, int) and fd >= 0:
            null = os.open(os.devnull, os.O_RDWR)
            try:
                os.dup2(null, fd)
            finally:
                os.close(null)
    with contextlib.suppress(Exception):
        f.close()


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """``os.pwrite`` until every byte is written; a write that makes no progress (a full
    device reported as a short write) raises ``OSError(ENOSPC)``."""
    view = memoryview(data)
    while view.nbytes:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view, offset = view[n:], offset + n


def pread_all(fd: int, size: int, offset: int) -> bytes:
    """``os.pread`` until ``size`` bytes are read; a file shorter than that raises ``OSError``."""
    parts: list[bytes] = []
    while size > 0:
        b = os.pread(fd, size, offset)
        if not b:
            raise OSError(errno.EIO, f"short read of a scratch file at byte {offset}")
        parts.append(b)
        size -= len(b)
        offset += len(b)
    return b"".join(parts)


def free_bytes(folder: str | os.PathLike[str]) -> int | None:
    """Bytes free to this user on the device holding ``folder`` (None when unknown)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return None
    return int(st.f_bavail) * int(st.f_frsize)


def has_room(folder: str | os.PathLike[str], need: int) -> bool:
    """Whether ``need`` bytes fit on ``folder``'s device (True when it cannot be told).

    Checked before each append, so a full device stops the writer between commits, where the
    file can still be closed normally (HDF5 cannot finish a write that ran out of space midway:
    its variable-length strings may then point past the end the file records).
    """
    free = free_bytes(folder)
    return free is None or free >= need
