"""Checking the CRC-32 of every block of feature rows a reader reads (issue 22).

The writer keeps one CRC-32 per block of ``block_rows`` feature rows (a block is one ~1 MiB
chunk) in ``checksums/features``. A reader reads whole blocks (HDF5 reads the whole chunk for
any row of it anyway), compares each block it has not checked yet with its stored CRC, and
remembers what it checked, so a store read twice is checked once. A block without a stored CRC
(the last, partial block of an encode still running or interrupted) is only checked for
finite values, as every block is: the writer refuses NaN and Inf, so one in a stored row means
the file was changed.
A sharded master maps each shard's rows in order: its blocks are each shard's blocks, offset
by the rows before the shard.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from . import format as fmt


class BlockChecks:
    """Which physical rows form each block, its stored CRC (-1: none) and whether it was
    checked.

    Parameters
    ----------
    starts, stops
        First and past-the-last physical row of each block, ascending and contiguous.
    crcs
        The stored CRC-32 of each block, -1 where none was stored.
    """

    def __init__(self, starts: np.ndarray, stops: np.ndarray, crcs: np.ndarray) -> None:
        self.starts = np.asarray(starts, np.int64)
        self.stops = np.asarray(stops, np.int64)
        self.crcs = np.asarray(crcs, np.int64)
        self.checked = np.zeros(self.crcs.size, bool)

    @classmethod
    def of(cls, path: Path, f: h5py.File, n: int) -> BlockChecks | None:
        """The blocks of an open store's ``n`` committed rows; None for a store written
        without CRCs (schema 1)."""
        if "shards" in f.attrs:
            from .shards import shard_table

            parts = []
            offset = 0
            for e in shard_table(f):
                with h5py.File(path.parent / e.file, "r", swmr=True, libver="latest") as s:
                    if fmt.FEATURE_CRC not in s:
                        return None
                    parts.append(_blocks(s[fmt.FEATURE_CRC], e.rows, offset))
                offset += e.rows
            if not parts:
                return cls(np.empty(0), np.empty(0), np.empty(0))
            return cls(*(np.concatenate(p) for p in zip(*parts, strict=True)))
        if fmt.FEATURE_CRC not in f:
            return None
        return cls(*_blocks(f[fmt.FEATURE_CRC], n, 0))

    def span(self, lo: int, hi: int) -> tuple[int, int]:
        """Indices ``[a, b)`` of the blocks holding physical rows ``lo .. hi - 1``."""
        a = int(np.searchsorted(self.stops, lo, side="right"))
        b = int(np.searchsorted(self.starts, hi, side="left"))
        return a, b

    def unchecked(self, a: int, b: int) -> bool:
        return not bool(self.checked[a:b].all())

    def check(
        self,
        a: int,
        b: int,
        data: np.ndarray,
        base: int,
        damaged: Callable[[int, int], Exception],
        finite: Callable[[np.ndarray, int], None],
    ) -> None:
        """Check blocks ``a .. b - 1`` of ``data`` (physical rows from ``base``) once each:
        their stored CRC-32 (where one was stored), then ``finite(rows, first_row)``."""
        for k in range(a, b):
            if self.checked[k]:
                continue
            s, e = int(self.starts[k]) - base, int(self.stops[k]) - base
            if self.crcs[k] >= 0 and fmt.crc32(data[s:e]) != int(self.crcs[k]):
                raise damaged(int(self.starts[k]), int(self.stops[k]))
            finite(data[s:e], int(self.starts[k]))
            self.checked[k] = True


def _blocks(ds: h5py.Dataset, n: int, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    block = int(ds.attrs["block_rows"])
    starts = np.arange(0, n, block, dtype=np.int64)
    stops = np.minimum(starts + block, n)
    stored = ds[:].astype(np.int64)
    crcs = np.full(starts.size, -1, np.int64)
    k = min(stored.size, starts.size)
    crcs[:k] = stored[:k]
    return starts + offset, stops + offset, crcs
