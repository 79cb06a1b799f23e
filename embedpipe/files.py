"""Temporary files for write-then-rename that end up with the permissions every other file
gets (``0o666`` less the umask), not :func:`tempfile.mkstemp`'s private ``0o600``: a store or a
head in a shared cache, or read by a server running as another user, must be readable like an
index or a report is."""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

_LOCK = threading.Lock()


def umask_mode() -> int:
    """``0o666`` less the process's umask: the mode ``open(path, "w")`` would create.

    Examples
    --------
    >>> old = os.umask(0o022)
    >>> oct(umask_mode())
    '0o644'
    >>> _ = os.umask(old)
    """
    with _LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o077)
        os.umask(mask)
    return 0o666 & ~mask


def shared_temp_file(folder: str | Path, prefix: str, suffix: str) -> Path:
    """A new, uniquely named empty file in ``folder`` with the umask's permissions.

    Examples
    --------
    >>> old = os.umask(0o022)
    >>> p = shared_temp_file(".", "x.h5.", ".creating")
    >>> oct(p.stat().st_mode & 0o777), p.name.startswith("x.h5.")
    ('0o644', True)
    >>> _ = os.umask(old)
    """
    fd, name = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    try:
        os.fchmod(fd, umask_mode())
    finally:
        os.close(fd)
    return Path(name)
