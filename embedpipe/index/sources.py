"""Reading an index's rows back from its source stores: float vectors (exact re-ranking,
vectors of quantised indexes) and contents, opened lazily and shared between threads."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError, StoreError
from .stores import StoreSet

if TYPE_CHECKING:
    from .meta import IndexMeta


class SourceReader:
    """The source stores of an index, as one row space (global store rows), opened on first use.

    Raises a :class:`ConfigError` naming the fix when the stores moved or changed.
    """

    def __init__(self, meta: IndexMeta) -> None:
        self.meta = meta
        self._ss: StoreSet | None = None
        self._lock = threading.Lock()

    def _open(self) -> StoreSet:
        if self._ss is None:
            paths = [s.path for s in self.meta.sources]
            try:
                ss = StoreSet(paths, merge=False)
            except StoreError as e:
                raise ConfigError(
                    f"this index reads its source stores {paths} (exact re-ranking, contents), "
                    f"and they are unavailable: {e} Load the index where its stores are, or "
                    "rebuild it."
                ) from None
            sizes = [len(fs) for fs in ss.stores]
            if ss.fingerprint != self.meta.fingerprint or sizes != [
                s.n_rows for s in self.meta.sources
            ]:
                ss.close()
                raise ConfigError(
                    f"the source stores {paths} changed since this index was built (rows "
                    f"{sizes}, fingerprint {ss.fingerprint}); rebuild the index."
                )
            self._ss = ss
        return self._ss

    def vectors(self, store_rows: np.ndarray) -> np.ndarray:
        """Float32 features of global store rows (any order)."""
        with self._lock:
            return self._open().read_rows(np.asarray(store_rows, np.int64))

    def contents(self, store_rows: np.ndarray) -> list[str | None]:
        with self._lock:
            return self._open().read_contents(np.asarray(store_rows, np.int64))

    def close(self) -> None:
        with self._lock:
            if self._ss is not None:
                self._ss.close()
                self._ss = None
