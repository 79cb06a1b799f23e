"""Measuring a stage while it runs: wall time, peak resident memory, disk written."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType


def folder_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when it does not exist).

    Examples
    --------
    >>> folder_bytes(Path("no-such-folder"))
    0
    """
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def rss_bytes() -> int:
    """The resident memory of this process now (psutil).

    Examples
    --------
    >>> rss_bytes() > 0
    True
    """
    import psutil

    return int(psutil.Process().memory_info().rss)


class Measure:
    """Wall time and the peak resident memory (sampled every ``interval`` s) of a block.

    Examples
    --------
    >>> with Measure() as m:
    ...     block = bytearray(20_000_000)
    >>> m.seconds > 0 and m.peak_bytes > 0
    True
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.seconds = 0.0
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_bytes = max(self.peak_bytes, rss_bytes())

    def __enter__(self) -> Measure:
        self.peak_bytes = rss_bytes()
        self._thread = threading.Thread(target=self._sample, name="embedpipe-measure", daemon=True)
        self._thread.start()
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.seconds = time.perf_counter() - self._t0
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_bytes = max(self.peak_bytes, rss_bytes())
