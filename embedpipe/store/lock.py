"""One writer per store: an exclusive lock held for the whole encode.

The lock is ``<store>.lock`` next to the store (a :mod:`filelock` lock, released by the
operating system when its process dies, SIGKILL included), plus ``<store>.lock.owner``, a small
JSON note of who holds it (pid, host, since when) so a second writer can say whom it waits for.
Holding the lock is what makes recovery safe: a store whose ``swmr`` write flag is still set but
whose lock is free was left by a dead writer, never by a live one.

The ``.lock`` file itself stays after the encode (deleting a lock file that another process may
be waiting on would let two writers in); a lock left by a process that died is free, and the
next writer takes it over (logging whose it was).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..errors import Fix, StoreError
from ..files import shared_temp_file

log = logging.getLogger(__name__)

#: How often a waiting writer repeats whom it waits for (seconds).
WAIT_REPEAT_S = 60.0


def lock_path(store: str | Path) -> Path:
    """The lock file of a store: ``x.h5`` → ``x.h5.lock``."""
    p = Path(store)
    return p.with_name(p.name + ".lock")


def _owner_path(store: str | Path) -> Path:
    p = Path(store)
    return p.with_name(p.name + ".lock.owner")


def lock_holder(store: str | Path) -> dict[str, Any] | None:
    """Who holds (or last held) a store's writer lock: ``{"pid", "host", "since"}`` or None."""
    try:
        return dict(json.loads(_owner_path(store).read_text()))
    except (OSError, ValueError):
        return None


def _describe(holder: dict[str, Any] | None) -> str:
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"


class StoreLock:
    """The exclusive writer lock of one store.

    Parameters
    ----------
    store
        The store file the lock guards (it need not exist yet).
    wait
        ``True``: wait for the holder to finish, logging whom it waits for. ``False``: raise
        :class:`~embedpipe.errors.StoreError` at once, naming the holder.

    Examples
    --------
    >>> lock = StoreLock("cache/a.h5").acquire()
    >>> lock.held
    True
    >>> StoreLock("cache/a.h5", wait=False).acquire()
    Traceback (most recent call last):
    ...
    embedpipe.errors.StoreError: 'cache/a.h5' is being written by pid ...: wait for that encode ...
    >>> lock.release()
    """

    def __init__(self, store: str | Path, *, wait: bool = True) -> None:
        self.store = Path(store)
        self.wait = wait
        self._lock = FileLock(str(lock_path(self.store)), thread_local=False, is_singleton=False)

    @property
    def held(self) -> bool:
        return bool(self._lock.is_locked)

    def acquire(self) -> StoreLock:
        """Take the lock (waiting or failing as ``wait`` says); returns ``self``."""
        self.store.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            holder = _describe(lock_holder(self.store))
            if not self.wait:
                raise StoreError(
                    f"{str(self.store)!r} is being written by {holder}: wait for that encode "
                    "to finish",
                    Fix(", or pass ", wait=True, does=" to wait for it"),
                    ".",
                ) from None
            while True:
                log.warning("waiting for %s, which is writing %s", holder, self.store)
                try:
                    self._lock.acquire(timeout=WAIT_REPEAT_S)
                    break
                except Timeout:
                    holder = _describe(lock_holder(self.store))
        stale = lock_holder(self.store)
        if stale is not None:  # its holder died without releasing it (a kill, a crash)
            log.info(
                "took over the writer lock of %s left by %s, which is no longer running (a "
                "stale lock is taken over automatically)",
                self.store,
                _describe(stale),
            )
        self._write_owner()
        return self

    def _write_owner(self) -> None:
        note = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        owner = _owner_path(self.store)
        fd, tmp = tempfile.mkstemp(dir=owner.parent, prefix=owner.name + ".", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(note, fh)
        os.replace(tmp, owner)

    def release(self) -> None:
        """Release the lock (no-op when not held)."""
        if not self.held:
            return
        try:
            _owner_path(self.store).unlink(missing_ok=True)
        finally:
            self._lock.release(force=True)

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def temp_path(target: str | Path, what: str) -> Path:
    """A new, uniquely named empty file in ``target``'s folder (for write-then-rename).

    Examples
    --------
    >>> p = temp_path("cache/x.h5", "creating")
    >>> p.parent.name, p.name.startswith("x.h5."), p.name.endswith(".creating")
    ('cache', True, True)
    """
    t = Path(target)
    t.parent.mkdir(parents=True, exist_ok=True)
    return shared_temp_file(t.parent, t.name + ".", "." + what)  # the umask's mode, not 0o600


def remove_stale_temps(target: str | Path) -> int:
    """Delete temporary files a dead writer of ``target`` left (call with the lock held)."""
    t = Path(target)
    n = 0
    if not t.parent.is_dir():
        return 0
    for p in t.parent.glob(t.name + ".*"):
        if p.suffix in (".creating", ".recover", ".sorting") and p.is_file():
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
    return n
