"""A background thread that appends encoded batches to the store while the model runs."""

from __future__ import annotations

import queue
import threading
from typing import Any

from ..store import StoreWriter

_STOP = object()


class BackgroundWriter:
    """Appends batches on a thread; errors surface on the next :meth:`put` or on :meth:`close`.

    The queue is bounded so a slow disk applies back-pressure instead of filling memory.
    """

    def __init__(self, writer: StoreWriter, max_pending: int = 8) -> None:
        self.writer = writer
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="embedpipe-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is _STOP:
                return
            if self._error is not None:
                continue  # drain without writing after a failure
            kind, args = job
            try:
                if kind == "rows":
                    self.writer.append(*args[0], **args[1])
                else:
                    self.writer.add_errors(*args)
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = e

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put_rows(
        self, features: Any, ids: list[str], hashes: list[bytes], labels: Any, **row: Any
    ) -> None:
        """Queue rows; ``row`` holds :meth:`StoreWriter.append`'s ``positions``, ``contents``
        and ``columns``."""
        self._check()
        self._q.put(("rows", ((features, ids, hashes, labels), row)))

    def put_errors(self, ids: list[str], reasons: list[str]) -> None:
        self._check()
        self._q.put(("errors", (ids, reasons)))

    def close(self) -> None:
        """Wait until every queued batch is committed, then re-raise a write error if any."""
        self._q.put(_STOP)
        self._thread.join()
        self._check()
