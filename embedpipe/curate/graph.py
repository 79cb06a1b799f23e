"""One k-nearest-neighbour graph over a corpus (cosine), built with FAISS in blocks.

Exact (blockwise brute force, two blocks of features in memory at a time) up to
``exact_limit`` rows; above it an IVF-Flat index (inner product on normalised vectors) is
trained on a sample (2·√N cells, 40 rows per cell, 10 k-means rounds), filled block by block
and searched block by block (16 cells per query), so its memory is the features' own size
plus a block.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import Arg, ConfigError
from ..index.exact import ExactKnn, drop_self
from ..index.metric import prepare
from .corpus import Corpus

GraphMethod = Literal["auto", "exact", "ivf"]

#: Above this many rows ``method="auto"`` builds the graph with an IVF index.
EXACT_LIMIT = 50_000


@dataclass
class KnnGraph:
    """Each row's ``k`` nearest other rows, best first.

    Attributes
    ----------
    rows
        ``[n, k]`` global row numbers (``-1``: none, in a corpus of ``k`` rows or fewer).
    sims
        ``[n, k]`` cosine similarities (``-inf`` where no neighbour).
    method
        How it was built (``exact`` or ``ivf nlist=… nprobe=…``).
    seconds
        Wall time of the build.
    """

    rows: np.ndarray
    sims: np.ndarray
    method: str
    seconds: float

    @property
    def k(self) -> int:
        return int(self.rows.shape[1])


def _exact(
    corpus: Corpus, k: int, block_rows: int, progress: Callable[[str], None] | None
) -> tuple[np.ndarray, np.ndarray]:
    n = len(corpus)
    rows = np.full((n, k), -1, np.int64)
    sims = np.full((n, k), -np.inf, np.float32)
    for q0, q in corpus.iter_blocks(block_rows):
        knn = ExactKnn(prepare(q, "cosine"), k + 1, "cosine")
        for d0, d in corpus.iter_blocks(block_rows):
            knn.add(prepare(d, "cosine") if d0 != q0 else knn.queries, d0)
        _keep_others(rows, sims, q0, *knn.result())
        if progress:
            progress(f"knn graph: {q0 + len(q):,}/{n:,} rows")
    sims[rows < 0] = -np.inf
    return rows, sims


def _keep_others(
    rows: np.ndarray, sims: np.ndarray, q0: int, dist: np.ndarray, found: np.ndarray
) -> None:
    """Write a block of queries' neighbours (rows ``q0`` on), each query's own row dropped."""
    kept = drop_self(found, np.arange(q0, q0 + len(found)))
    # Distances follow their rows: look each kept row up in the found list.
    pos = np.argmax(found[:, :, None] == kept[:, None, :], axis=1)
    rows[q0 : q0 + len(found)] = kept
    sims[q0 : q0 + len(found)] = np.take_along_axis(dist, pos, axis=1)


def _ivf(
    corpus: Corpus,
    k: int,
    block_rows: int,
    nprobe: int | None,
    seed: int,
    progress: Callable[[str], None] | None,
) -> tuple[np.ndarray, np.ndarray, str]:
    import faiss

    n = len(corpus)
    nlist = max(16, int(2 * math.sqrt(n)))
    nprobe = nprobe or 16
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))
    quantizer = faiss.IndexFlatIP(corpus.dim)
    index = faiss.IndexIVFFlat(quantizer, corpus.dim, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.niter = 10
    index.train(prepare(corpus.read_rows(sample), "cosine"))
    for b0, b in corpus.iter_blocks(block_rows):
        index.add(prepare(b, "cosine"))
        if progress:
            progress(f"knn graph: added {b0 + len(b):,}/{n:,} rows")
    index.nprobe = nprobe
    rows = np.full((n, k), -1, np.int64)
    sims = np.full((n, k), -np.inf, np.float32)
    for q0, q in corpus.iter_blocks(block_rows):
        _keep_others(rows, sims, q0, *index.search(prepare(q, "cosine"), k + 1))
        if progress:
            progress(f"knn graph: searched {q0 + len(q):,}/{n:,} rows")
    sims[rows < 0] = -np.inf
    return rows, sims, f"ivf nlist={nlist} nprobe={nprobe}"


def build_knn_graph(
    corpus: Corpus,
    k: int = 10,
    *,
    method: GraphMethod = "auto",
    block_rows: int = 32768,
    nprobe: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> KnnGraph:
    """The cosine ``k``-nearest-neighbour graph of every row of ``corpus`` (itself excluded).

    Parameters
    ----------
    corpus
        From :func:`~embedpipe.curate.corpus.open_corpus`.
    k
        Neighbours per row.
    method
        ``exact`` (blockwise brute force), ``ivf`` (FAISS IVF-Flat; approximate) or ``auto``
        (exact up to 50,000 rows).
    block_rows
        Rows read from the stores at a time.
    nprobe
        IVF cells searched per query (default 16).

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.store import StoreWriter
    >>> from embedpipe.curate.corpus import open_corpus
    >>> w = StoreWriter.create("g.h5", dim=2, fingerprint="fp", backbone={})
    >>> w.append(np.array([[1, 0], [1, 0.1], [0, 1]]), ["a", "b", "c"], [bytes(16)] * 3)
    >>> w.finalize()
    >>> build_knn_graph(open_corpus(["g.h5"]), k=1).rows[:, 0].tolist()
    [1, 0, 1]
    """
    if k < 1:
        raise ConfigError(f"k={k} is too small; pass k=1 or more (e.g. k=10).")
    if block_rows < 1:
        raise ConfigError(f"block_rows={block_rows} is too small; pass block_rows=1 or more.")
    if method not in ("auto", "exact", "ivf"):
        raise ConfigError(Arg("method", method), " is not known; pass 'auto', 'exact' or 'ivf'.")
    t0 = time.perf_counter()
    n = len(corpus)
    if method == "ivf" or (method == "auto" and n > EXACT_LIMIT):
        rows, sims, how = _ivf(corpus, k, block_rows, nprobe, seed, progress)
    else:
        rows, sims = _exact(corpus, k, block_rows, progress)
        how = "exact"
    return KnnGraph(rows=rows, sims=sims, method=how, seconds=time.perf_counter() - t0)
