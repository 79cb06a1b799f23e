"""A background thread that appends encoded batches to the store while the model runs.

A batch is committed as soon as the thread gets to it; batches that queued up behind it
meanwhile (the model outran the disk) go into the same
:meth:`~embedpipe.store.StoreWriter.append`, up to :data:`COMMIT_ROWS` rows. Nothing waits
to be grouped, so a kill -9 loses no more than before (the batches still in the queue);
when the writer lags, fewer, larger appends cost less (h5py holds the GIL through each call,
and a small append costs nearly as much as a large one: 0.65 ms for 64 MiniLM rows).

``commit_interval`` (seconds, ``EncodeOptions.commit_interval``; 0 by default) groups commits
on purpose: encoded batches are held, then appended and committed together once that much
time has passed since the last commit (or :data:`COMMIT_ROWS` rows are waiting), and on
:meth:`close`. A kill -9 then loses at most that much work, which a resume re-encodes.

When the model runs on the CPU the thread is switched off (``in_thread=False``: each batch is
appended in the caller's thread, between forwards). There the forward's threads already hold
every core, and a writer thread running beside them costs about three times its own CPU time:
the model's OpenMP threads wait at their barrier for the one it displaced, and the next
batch's padding waits for the GIL that h5py holds through an append (MiniLM on 2 cores, 2,000
texts, median of 5 passes in one process: full encode / bare forward 0.88-0.92 with the
thread, 0.95 inline).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

from ..errors import StoreError
from ..store import StoreWriter
from .rows import Rows

_STOP = object()

#: Most rows one append takes from batches waiting in the queue.
COMMIT_ROWS = 4096


class BackgroundWriter:
    """Appends batches on a thread; errors surface on the next :meth:`put` or on :meth:`close`.

    The queue is bounded so a slow disk applies back-pressure instead of filling memory.

    Parameters
    ----------
    writer
        The store's writer.
    max_pending
        Batches the queue holds before :meth:`put_rows` blocks.
    commit_rows
        Most rows one append takes from waiting batches (see the module docstring).
    in_thread
        ``False``: no thread, each :meth:`put_rows` appends before it returns (for a model on
        the CPU; see the module docstring). A write error is then raised by that call.
    commit_interval
        Seconds over which batches are grouped into one commit (0: none; see above).
    """

    def __init__(
        self,
        writer: StoreWriter,
        max_pending: int = 8,
        *,
        commit_rows: int | None = None,
        in_thread: bool = True,
        commit_interval: float = 0.0,
    ) -> None:
        self.writer = writer
        self.commit_rows = COMMIT_ROWS if commit_rows is None else commit_rows
        self.commit_interval = commit_interval
        self._held: list[Rows] = []
        self._held_rows = 0
        self._last_commit = time.monotonic()
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max_pending)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if in_thread:
            self._thread = threading.Thread(target=self._run, name="embedpipe-writer", daemon=True)
            self._thread.start()

    def _commit(self, jobs: list[Rows]) -> None:
        try:
            Rows.concat(jobs).append_to(self.writer)
            return
        except StoreError as e:  # refused before writing (NaN, repeated id): batch by batch,
            if len(jobs) == 1:  # so the good batches before the bad one are kept
                self._error = e
                return
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            self._error = e
            return
        for rows in jobs:
            try:
                rows.append_to(self.writer)
            except BaseException as e:  # noqa: BLE001
                self._error = e
                return

    def _offer(self, jobs: list[Rows]) -> None:
        """Commit ``jobs`` now, or hold them until the commit interval has passed."""
        if self.commit_interval <= 0:
            self._commit(jobs)
            return
        if self._held and self._held[0].kind != jobs[0].kind:
            self._flush()
        self._held += jobs
        self._held_rows += sum(len(r) for r in jobs)
        due = time.monotonic() - self._last_commit >= self.commit_interval
        if due or self._held_rows >= self.commit_rows:
            self._flush()

    def _flush(self) -> None:
        if self._held:
            held, self._held, self._held_rows = self._held, [], 0
            self._commit(held)
        self._last_commit = time.monotonic()

    def _run(self) -> None:
        held: Any = None  # a job taken from the queue while grouping, handled next
        while True:
            if held is not None:
                job, held = held, None
            elif self._held:  # commit what is held once the interval is up, even when idle
                wait = self.commit_interval - (time.monotonic() - self._last_commit)
                try:
                    job = self._q.get(timeout=max(wait, 0.0))
                except queue.Empty:
                    if self._error is None:
                        self._flush()
                    continue
            else:
                job = self._q.get()
            if job is _STOP:
                if self._error is None:
                    self._flush()
                return
            if self._error is not None:
                continue  # drain without writing after a failure
            kind, args = job
            if kind != "rows":
                try:
                    self._flush()  # skip records after the rows encoded before them
                    self.writer.add_errors(*args)
                except BaseException as e:  # noqa: BLE001
                    self._error = e
                continue
            jobs, n = [args], len(args)
            while n < self.commit_rows:  # batches already waiting join this append
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP or nxt[0] != "rows" or nxt[1].kind != args.kind:
                    held = nxt
                    break
                jobs.append(nxt[1])
                n += len(nxt[1])
            self._offer(jobs)

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put_rows(self, rows: Rows) -> None:
        """Queue rows for :meth:`StoreWriter.append`."""
        self._check()
        if self._thread is None:
            self._offer([rows])
            self._check()
        else:
            self._q.put(("rows", rows))

    def put_errors(self, ids: list[str], reasons: list[str]) -> None:
        self._check()
        if self._thread is None:
            self._flush()
            self._check()
            self.writer.add_errors(ids, reasons)
        else:
            self._q.put(("errors", (ids, reasons)))

    def close(self) -> None:
        """Wait until every queued batch is committed, then re-raise a write error if any."""
        if self._thread is not None:
            self._q.put(_STOP)
            self._thread.join()
        elif self._error is None:
            self._flush()
        self._check()
