"""Putting a store's rows into the source's order when its encode finishes.

An encode appends rows in whatever order is fastest (texts sorted by length, reused rows
first, a resume's new items last) and records each row's source ``position``. Finalizing
rewrites the rows sorted by position, so every reader returns them in the source's order with
plain sequential reads (no permutation at read time, which would make ``iter_batches`` gather
rows from all over the file).

The rewrite goes to a uniquely named temporary file in the store's folder, renamed over the
store when done (the writer's lock is held throughout). Memory stays flat whatever the size:
the output is written in windows of :data:`WINDOW_BYTES`. Fixed-size rows (features, hashes,
labels, positions) are first distributed by window into an unnamed scratch file (one
sequential read, one write, one read back: a bucket sort on disk); strings (ids, content,
kept columns) are gathered per window from the input blocks that hold its rows.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

from . import format as fmt
from .lock import temp_path
from .space import detach, has_room, is_no_space, pread_all, pwrite_all

#: Bytes of one output window of a fixed-size row dataset (the scratch read-back holds one
#: window twice: 2 x 16 MiB).
WINDOW_BYTES = 16 << 20
#: Rows of one output window of a string dataset (ids, content: ~100-300 bytes a row).
STRING_WINDOW_ROWS = 131072
#: Bytes of one input block read while filling a window.
BLOCK_BYTES = 4 << 20


def _row_bytes(ds: h5py.Dataset) -> int:
    if ds.dtype.kind == "O":
        return 256  # a variable-length string: an estimate (texts are cut to 2000 chars)
    return max(1, int(np.prod(ds.shape[1:], dtype=np.int64)) * ds.dtype.itemsize)


def _read(ds: h5py.Dataset, start: int, stop: int) -> np.ndarray:
    return ds.asstr()[start:stop] if ds.dtype.kind == "O" else ds[start:stop]


def order_of(f: h5py.File) -> np.ndarray | None:
    """Physical row of each output row, or None when the rows are already in source order."""
    if fmt.POSITIONS not in f:
        return None
    n = int(f.attrs["n_committed"])
    pos = f[fmt.POSITIONS][:n]
    if n < 2 or bool((np.diff(pos) > 0).all()):
        return None
    return np.argsort(pos, kind="stable")


def sort_rows(path: str | Path) -> bool:
    """Rewrite a closed store's rows in source-position order; False if already in order.

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.store import FeatureStore, StoreWriter
    >>> w = StoreWriter.create("r.h5", dim=1, fingerprint="f", backbone={})
    >>> w.append(np.array([[2.0], [0.0], [1.0]]), ["c", "a", "b"], [bytes(16)] * 3,
    ...          positions=[2, 0, 1])
    >>> w.close()                # not finalized: rows are still in encode order on disk
    >>> sort_rows("r.h5")
    True
    >>> FeatureStore("r.h5").read(slice(0, 3)).ravel().tolist()
    [0.0, 1.0, 2.0]
    """
    from .writer import copy_layout

    path = Path(path)
    with h5py.File(path, "r") as src:
        order = order_of(src)
        if order is None:
            return False
        n = order.size
        rank = np.empty(n, np.int64)
        rank[order] = np.arange(n, dtype=np.int64)
        # The sorted copy and the scratch file of the largest fixed-size dataset, at once.
        scratch = max(
            (src[k].nbytes for k in fmt.row_datasets(src) if src[k].dtype.kind != "O"), default=0
        )
        if not has_room(path.parent, path.stat().st_size + scratch + (1 << 20)):
            raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)}: sorting {str(path)!r}")
        tmp = temp_path(path, "sorting")
        dst: h5py.File | None = None
        try:
            dst = h5py.File(tmp, "w", libver=fmt.LIBVER)
            copy_layout(src, dst, n)
            for name in (fmt.ERR_IDS, fmt.ERR_REASONS):
                if name in src and src[name].shape[0]:
                    dst[name][:] = src[name][:]
            for name in fmt.row_datasets(src):
                if src[name].dtype.kind == "O":
                    _permute(src[name], dst[name], rank, n)
                else:
                    _permute_fixed(src[name], dst[name], rank, n, path.parent)
            if fmt.FEATURE_CRC in dst:
                fmt.write_feature_crcs(dst)  # rows moved: every block's CRC changed
            dst.close()
        except BaseException as e:
            if dst is not None:
                # A full device: the copy cannot be closed cleanly (see store.space).
                if is_no_space(e):
                    detach(dst)
                else:
                    dst.close()
            tmp.unlink(missing_ok=True)
            raise
    os.replace(tmp, path)
    return True


def _permute(s: h5py.Dataset, d: h5py.Dataset, rank: np.ndarray, n: int) -> None:
    rb = _row_bytes(s)
    window = max(4096, min(STRING_WINDOW_ROWS, WINDOW_BYTES * 8 // rb))
    block = max(4096, BLOCK_BYTES // rb)
    n_blocks = (n + block - 1) // block
    # Which windows each input block feeds: its rows' output windows (a small boolean table).
    n_windows = (n + window - 1) // window
    feeds = np.zeros((n_blocks, n_windows), bool)
    for b in range(n_blocks):
        feeds[b, np.unique(rank[b * block : (b + 1) * block] // window)] = True
    for w in range(n_windows):
        lo, hi = w * window, min(n, (w + 1) * window)
        buf: np.ndarray | None = None
        for bk in np.flatnonzero(feeds[:, w]).tolist():
            b0, b1 = bk * block, min(n, (bk + 1) * block)
            r = rank[b0:b1]
            sel = (r >= lo) & (r < hi)
            data = _read(s, b0, b1)
            if buf is None:
                buf = np.empty((hi - lo, *data.shape[1:]), dtype=data.dtype)
            buf[r[sel] - lo] = data[sel]
        assert buf is not None
        d[lo:hi] = buf


def _permute_fixed(
    s: h5py.Dataset, d: h5py.Dataset, rank: np.ndarray, n: int, scratch_dir: Path
) -> None:
    rb = _row_bytes(s)
    tail = s.shape[1:]
    window = max(4096, WINDOW_BYTES // rb)
    block = max(4096, BLOCK_BYTES // rb)
    wid = rank // window
    n_windows = int(wid.max()) + 1 if n else 0
    counts = np.bincount(wid, minlength=n_windows)
    offs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    filled = offs.copy()
    staged_rank = np.empty(n, np.int64)
    with tempfile.TemporaryFile(dir=scratch_dir, prefix=".embedpipe-sort-") as fh:
        fd = fh.fileno()
        for b0 in range(0, n, block):
            b1 = min(n, b0 + block)
            w = wid[b0:b1]
            o = np.argsort(w, kind="stable")
            ws, rs = w[o], rank[b0:b1][o]
            data = np.ascontiguousarray(s[b0:b1][o])
            cuts = np.flatnonzero(np.diff(ws)) + 1
            for g0, g1 in zip(np.r_[0, cuts], np.r_[cuts, ws.size], strict=True):
                wv = int(ws[g0])
                at = int(filled[wv])
                pwrite_all(fd, data[g0:g1].tobytes(), at * rb)
                staged_rank[at : at + (g1 - g0)] = rs[g0:g1]
                filled[wv] += g1 - g0
        for wv in range(n_windows):
            lo, hi = wv * window, min(n, (wv + 1) * window)
            cnt, at = int(counts[wv]), int(offs[wv])
            raw = pread_all(fd, cnt * rb, at * rb)
            arr = np.frombuffer(raw, dtype=s.dtype).reshape(cnt, *tail)
            buf = np.empty((hi - lo, *tail), dtype=s.dtype)
            buf[staged_rank[at : at + cnt] - lo] = arr
            d[lo:hi] = buf
