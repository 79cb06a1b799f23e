"""Item-level reuse: copy features of already-encoded content from earlier stores."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import Fix, StoreError
from ..store import FeatureStore
from ..store.format import describe_precision, match_precision
from .rows import SourceRows
from .writer_thread import BackgroundWriter

COPY_BATCH = 4096


class ReusePool:
    """Content hash → (store, row) over earlier stores made with the same backbone fingerprint.

    A store made by another backbone raises :class:`~embedpipe.errors.FingerprintMismatchError`:
    its features must never be mixed in.
    """

    def __init__(
        self,
        stores: Sequence[str | Path],
        fingerprint: str,
        exclude: Path | None = None,
        *,
        precision: str = "",
        allow_mixed_precision: bool = False,
    ) -> None:
        self.paths: list[Path] = []
        self.mixed = False
        self.where: dict[bytes, tuple[int, int]] = {}
        for p in stores:
            p = Path(p)
            if exclude is not None and p.resolve() == exclude.resolve():
                continue
            with FeatureStore(p) as fs:
                fs.check_fingerprint(fingerprint, what="reused features")
                if precision and fs.precision and fs.precision != precision:
                    if not allow_mixed_precision:
                        raise StoreError(
                            f"cannot reuse features of {str(p)!r}: encoded at "
                            f"{describe_precision(fs.precision)}, this encode runs at "
                            f"{describe_precision(precision)}.",
                            Fix(
                                " Pass ",
                                match_precision(fs.precision),
                                allow_mixed_precision=True,
                                does=".",
                            ),
                        )
                    self.mixed = True
                k = len(self.paths)
                self.paths.append(p)
                for row, h in enumerate(fs.content_hashes):
                    self.where.setdefault(bytes(h), (k, row))

    def copy_into(
        self,
        bg: BackgroundWriter,
        todo: list[int],
        rows: SourceRows,
    ) -> tuple[list[int], int]:
        """Copy the rows of ``todo`` items found in the pool; return the rest and the count."""
        by_store: dict[int, list[tuple[int, int]]] = defaultdict(list)
        rest: list[int] = []
        for i in todo:
            hit = self.where.get(rows.hashes[i])
            if hit is None:
                rest.append(i)
            else:
                by_store[hit[0]].append((i, hit[1]))
        n = 0
        for k, pairs in by_store.items():
            with FeatureStore(self.paths[k]) as fs:
                for s in range(0, len(pairs), COPY_BATCH):
                    chunk = pairs[s : s + COPY_BATCH]
                    feats = fs.read(np.array([r for _, r in chunk]))
                    bg.put_rows(rows.take([i for i, _ in chunk], feats))
                    n += len(chunk)
        return rest, n
