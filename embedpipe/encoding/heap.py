"""Handing freed heap memory back to the operating system during a long encode.

Why (issue 17, measured with ``benchmarks/encode_memory.py``): a CNN encode on CPU allocates
and frees activation buffers of a few MB for every batch (MobileNetV2 at 224 px, batch 64:
hundreds of MB per forward). glibc's malloc raises its mmap threshold to the size of the
largest buffer freed so far (up to 32 MB), so from the first batches on those buffers come
from its arenas instead of fresh mappings, and a freed buffer in the middle of an arena stays
resident: the allocator keeps it for reuse, and the arenas fragment as batch after batch asks
for slightly different sizes (one arena per thread that allocates: torch's, the writer's).
Live memory stays flat while what glibc holds free grows with the rows. Measured on
Fashion-MNIST's 60,000 training images: live heap 649-655 MB throughout, anonymous RSS up to
2,261 MB (peak RSS 1,973 MB in the first 10k rows, 2,683 MB at 30-40k): the growth the issue
saw. With trimming, anonymous RSS stays at 990-1,159 MB and peak RSS at 1,412-1,581 MB.

The fix: every :data:`TRIM_EVERY_S` seconds of encoding, the loop calls glibc's
``malloc_trim(0)``, which returns every whole free page of every arena to the OS
(``madvise(MADV_DONTNEED)``), wherever it lies; the next batch faults those pages back in.
One trim costs about 20 ms (``encode_memory.py --trim-cost 3``: the call 5-6 ms, the batch
after it 17-20 ms longer than the median 720 ms one), 0.07% of the time at one every 30 s.
On other C libraries (musl, macOS) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time

#: Seconds of encoding between two trims; ``None`` turns trimming off (for measurements).
TRIM_EVERY_S: float | None = 30.0


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def release_free_memory() -> bool:
    """Return the C heap's free pages to the OS now; ``False`` where the C library cannot.

    Examples
    --------
    >>> import sys
    >>> release_free_memory() if sys.platform == "linux" else True
    True
    """
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True


class HeapTrimmer:
    """Call :func:`release_free_memory` at most every ``every_s`` seconds.

    Parameters
    ----------
    every_s
        The interval; ``None`` (default: :data:`TRIM_EVERY_S` at construction) or a value
        ``<= 0`` never trims.

    Examples
    --------
    >>> t = HeapTrimmer(every_s=0.0)
    >>> t.tick(), t.n_trims
    (False, 0)
    >>> t = HeapTrimmer(every_s=1e-9)
    >>> _ = t.tick(); t.n_trims >= 0
    True
    """

    def __init__(self, every_s: float | None = None) -> None:
        self.every_s = TRIM_EVERY_S if every_s is None else every_s
        self._last = time.monotonic()
        self.n_trims = 0

    def tick(self) -> bool:
        """Trim if the interval has passed since the last trim; whether it trimmed."""
        if not self.every_s or self.every_s <= 0:
            return False
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        if release_free_memory():
            self.n_trims += 1
            return True
        return False
