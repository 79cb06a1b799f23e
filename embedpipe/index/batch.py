"""Batch queries: many queries against an index, one output row per hit, streamed to a file.

Queries come from a feature store of the index's backbone (``.h5``: its vectors, its ids), a
text file (one query per line), a table (CSV / TSV / JSONL, optionally compressed, Parquet,
Arrow or a JSON array, with a ``query`` or ``text`` column and an optional ``id`` column), or
Python (a list of strings, an array of vectors). Hits are written as they are found, batch after batch (flat memory), to Parquet,
CSV or JSON Lines, chosen by the output's suffix.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ConfigError

if TYPE_CHECKING:
    from .similarity import SimilarityIndex

#: The columns of a hits file, in order.
HIT_COLUMNS = ("query_id", "rank", "id", "score", "label", "content")
OUT_FORMATS = (".parquet", ".csv", ".jsonl")
_QUERY_COLUMNS = ("query", "text")


@dataclass
class BatchQueries:
    """Queries with their ids: texts, or vectors (read batch by batch from a store)."""

    ids: list[str]
    texts: list[str] | None = None
    vectors: np.ndarray | None = None
    store: Path | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self, index: SimilarityIndex, size: int) -> Iterator[tuple[list[str], Any]]:
        """``(query ids, hits per query)`` for each batch of ``size`` queries."""
        if self.store is not None:
            from ..store import FeatureStore

            with FeatureStore(self.store) as fs:
                fs.check_fingerprint(index.fingerprint, f"queries {str(self.store)!r}")
                for b in fs.iter_batches(size):
                    yield [str(i) for i in b.ids.tolist()], b.features
            return
        for s in range(0, len(self.ids), size):
            part = self.texts[s : s + size] if self.texts is not None else None
            if part is None:
                assert self.vectors is not None
                yield self.ids[s : s + size], self.vectors[s : s + size]
            else:
                yield self.ids[s : s + size], part


def read_queries(
    queries: str | Path | Sequence[str] | np.ndarray, *, column: str | None = None
) -> BatchQueries:
    """Queries from a path (store, text file, table) or from Python values.

    Examples
    --------
    >>> from pathlib import Path
    >>> _ = Path("q.txt").write_text("a red car\\n\\nslow and tedious\\n")
    >>> q = read_queries("q.txt")
    >>> q.ids, q.texts
    (['1', '3'], ['a red car', 'slow and tedious'])
    """
    if isinstance(queries, np.ndarray):
        x = queries if queries.ndim == 2 else queries[None, :]
        return BatchQueries([str(i) for i in range(len(x))], vectors=x)
    if not isinstance(queries, str | Path):
        texts = [str(t) for t in queries]
        return BatchQueries([str(i) for i in range(len(texts))], texts=texts)
    p = Path(queries)
    if not p.is_file():
        raise ConfigError(
            f"queries {str(p)!r} is not a file; give a feature store (.h5), a text file (one "
            "query per line) or a table with a 'query' column."
        )
    if p.suffix == ".h5":
        from ..store import FeatureStore

        with FeatureStore(p) as fs:
            ids = [str(i) for i in fs.ids.tolist()]
        return BatchQueries(ids, store=p)
    from ..data.tables import table_forms

    if ".json" in p.name.lower() or any(f.claims(p) for f in table_forms()):
        return _read_table(p, column)
    ids, texts = [], []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            ids.append(str(n))
            texts.append(line.strip())
    if not texts:
        raise ConfigError(f"queries {str(p)!r} holds no query; write one per line.")
    return BatchQueries(ids, texts=texts)


def _read_table(p: Path, column: str | None) -> BatchQueries:
    name = p.name.lower()
    if ".json" in name and ".jsonl" not in name:  # a JSON array of records
        import pandas as pd

        df = pd.read_json(p)
    else:  # the data layer's table formats: cells read as text verbatim ("NA" stays "NA")
        from ..data.tables import table_form

        df = table_form(p).read(p, None)
    wanted = [column] if column else [c for c in _QUERY_COLUMNS if c in df.columns]
    if not wanted or wanted[0] not in df.columns:
        raise ConfigError(
            f"queries {str(p)!r} has no {column or 'query'!r} column (it has {list(df.columns)}); "
            "name the column of query texts with --query-column."
        )
    texts = df[wanted[0]].astype(str).tolist()
    ids = df["id"].astype(str).tolist() if "id" in df.columns else [str(i) for i in range(len(df))]
    return BatchQueries(ids, texts=texts)


class HitWriter:
    """Streams hit rows to ``.parquet``, ``.csv`` or ``.jsonl`` (by suffix)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fmt = self.path.suffix.lower()
        if fmt not in OUT_FORMATS:
            raise ConfigError(
                f"--out {str(path)!r}: write hits to a {', '.join(OUT_FORMATS)} file."
            )
        self.format = fmt
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.n_rows = 0
        self._pq: Any = None
        self._fh: Any = None
        self._csv: Any = None
        if fmt == ".csv":
            self._fh = self.path.open("w", newline="", encoding="utf-8")
            self._csv = csv.DictWriter(self._fh, fieldnames=list(HIT_COLUMNS))
            self._csv.writeheader()
        elif fmt == ".jsonl":
            self._fh = self.path.open("w", encoding="utf-8")

    def write(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        self.n_rows += len(rows)
        if self.format == ".csv":
            self._csv.writerows(rows)
        elif self.format == ".jsonl":
            self._fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pa.schema(
                [
                    ("query_id", pa.string()),
                    ("rank", pa.int32()),
                    ("id", pa.string()),
                    ("score", pa.float32()),
                    ("label", pa.string()),
                    ("content", pa.string()),
                ]
            )
            table = pa.Table.from_pylist(rows, schema=schema)
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.path, schema)
            self._pq.write_table(table)

    def close(self) -> None:
        if self.format == ".parquet" and self._pq is None:  # no hits: still a valid file
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({c: pa.array([], pa.string()) for c in HIT_COLUMNS}), self.path)
        if self._pq is not None:
            self._pq.close()
        if self._fh is not None:
            self._fh.close()


def iter_hits(
    index: SimilarityIndex,
    queries: BatchQueries,
    *,
    k: int = 10,
    batch_size: int = 256,
    progress: bool = False,
    where: str | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """Hit rows (``HIT_COLUMNS``), one list per batch of queries, closest first per query."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(queries), unit="query", desc="search", disable=not progress)
    with bar:
        for qids, part in queries.batches(index, batch_size):
            kind = "vectors" if isinstance(part, np.ndarray) else "texts"
            hits = index.find(**{kind: part}, k=k, where=where)
            yield [
                {
                    "query_id": qid,
                    "rank": h.rank,
                    "id": h.id,
                    "score": float(h.score),
                    "label": h.label,
                    "content": h.content,
                }
                for qid, q_hits in zip(qids, hits, strict=True)
                for h in q_hits
            ]
            bar.update(len(qids))


def search_batch(
    index: SimilarityIndex,
    queries: str | Path | Sequence[str] | np.ndarray | BatchQueries,
    out: str | Path | None = None,
    *,
    k: int = 10,
    batch_size: int = 256,
    column: str | None = None,
    progress: bool = False,
    where: str | None = None,
) -> Any:
    """Search many queries; one row per hit (query id, rank, hit id, score, label, content).

    Parameters
    ----------
    index
        The index.
    queries
        A feature store (``.h5``) of the index's backbone, a text file (one query per line),
        a table with a ``query``/``text`` column (``column`` names another) and an optional
        ``id`` column, a list of texts, or an array of vectors.
    out
        ``.parquet``, ``.csv`` or ``.jsonl`` file the hits are streamed to; ``None``: return
        them as a pandas DataFrame.
    k
        Hits per query.
    batch_size
        Queries encoded and searched at a time.
    where
        A filter every query's hits must pass (see :mod:`embedpipe.index.where`).

    Returns
    -------
    pathlib.Path or pandas.DataFrame
        The file written, or the hits.

    Examples
    --------
    >>> from embedpipe.index import build_index
    >>> from embedpipe.store import write_store
    >>> X = np.random.default_rng(0).normal(size=(100, 8)).astype("float32")
    >>> _ = write_store("b.h5", X, [f"v{i}" for i in range(100)])
    >>> hits = search_batch(build_index("b.h5", "flat"), X[:3], k=2)
    >>> hits[["query_id", "rank", "id"]].values.tolist()[:2]
    [['0', 1, 'v0'], ['0', 2, 'v44']]
    """
    q = queries if isinstance(queries, BatchQueries) else read_queries(queries, column=column)
    hits = iter_hits(index, q, k=k, batch_size=batch_size, progress=progress, where=where)
    if out is None:
        import pandas as pd

        return pd.DataFrame([r for rows in hits for r in rows], columns=list(HIT_COLUMNS))
    writer = HitWriter(out)
    try:
        for rows in hits:
            writer.write(rows)
    finally:
        writer.close()
    return writer.path
