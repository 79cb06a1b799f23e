"""A served index that follows its folder: when an update swaps a new index in, the next
request gets it, and requests already running finish on the one they started with."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from .persist import META_FILE
from .similarity import SimilarityIndex

log = logging.getLogger(__name__)

#: Seconds between two looks at the folder.
CHECK_EVERY = 0.25


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
        meta = os.stat(path / META_FILE)
    except OSError:
        return None
    return st.st_ino, meta.st_mtime_ns


class LiveIndex:
    """The current :class:`SimilarityIndex` of a folder, reloaded when the folder changes.

    :meth:`get` is what a request calls once, at its start: it returns the index to use for
    the whole request. When the folder was swapped (``embedpipe index`` updating it), one
    caller loads the new index while the others go on with the old one; the new one takes
    over atomically once loaded (the backbone already loaded is handed over, not reloaded).
    An index that cannot be loaded (a folder being replaced by hand) leaves the old one in
    service and is retried on a later request.

    Examples
    --------
    >>> live = LiveIndex(index)          # doctest: +SKIP
    >>> live.get().search(vector, k=5)   # doctest: +SKIP
    """

    def __init__(self, index: SimilarityIndex, *, check_every: float = CHECK_EVERY) -> None:
        self._index = index
        self._path = index.path
        self._sig = _signature(index.path) if index.path is not None else None
        self._check_every = check_every
        self._checked = time.monotonic()
        self._loading = threading.Lock()
        self.reloads = 0

    def get(self) -> SimilarityIndex:
        """The index to serve this request with."""
        if self._path is None:
            return self._index
        now = time.monotonic()
        if now - self._checked < self._check_every:
            return self._index
        self._checked = now
        sig = _signature(self._path)
        if sig is None or sig == self._sig or not self._loading.acquire(blocking=False):
            return self._index
        try:
            self._reload(sig)
        finally:
            self._loading.release()
        return self._index

    def _reload(self, sig: tuple[int, int]) -> None:
        old = self._index
        assert self._path is not None
        try:
            new = SimilarityIndex.load(self._path)
        except Exception as e:  # noqa: BLE001 - keep serving the old index
            log.warning(
                "index %s changed but cannot be loaded yet (%s); still serving the old one",
                self._path,
                e,
            )
            return
        for i, s in enumerate(old.meta.sources):  # an image root set at serve time stays
            if i < len(new.meta.sources) and s.image_root and not new.meta.sources[i].image_root:
                new.meta.sources[i].image_root = s.image_root
        enc = getattr(old, "_encoder", None)
        if enc is not None and new.fingerprint == old.fingerprint:
            new.set_encoder(enc)
        self._index = new
        self._sig = sig
        self.reloads += 1
        log.info("serving the updated index %s (%d items)", self._path, len(new))
