"""The rows an encode hands to its store, spelled once: :class:`Rows` holds the fields of
:meth:`~embedpipe.store.StoreWriter.append`, :class:`SourceRows` builds them for source
positions (encoded or copied from an earlier store), and the background writer joins waiting
batches with :meth:`Rows.concat`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.base import DataSource, kept_columns, reference
from ..store import StoreWriter


@dataclass
class Rows:
    """One append's rows: features, ids, content hashes, labels, and per row its source
    position, what a person recognises it by (``contents``) and the kept user columns."""

    features: np.ndarray
    ids: list[str]
    hashes: list[bytes]
    labels: np.ndarray
    positions: np.ndarray
    contents: list[str]
    columns: dict[str, list[str]]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def kind(self) -> tuple[str, ...]:
        """What two batches must share to be appended as one: the kept columns' names."""
        return tuple(sorted(self.columns))

    def append_to(self, writer: StoreWriter) -> None:
        """Append (and commit) these rows."""
        writer.append(
            self.features,
            self.ids,
            self.hashes,
            self.labels,
            positions=self.positions,
            contents=self.contents,
            columns=self.columns,
        )

    @classmethod
    def concat(cls, parts: list[Rows]) -> Rows:
        """The rows of ``parts`` in order, as one append (all of one :attr:`kind`)."""
        if len(parts) == 1:
            return parts[0]
        return cls(
            np.concatenate([np.asarray(p.features) for p in parts]),
            [i for p in parts for i in p.ids],
            [h for p in parts for h in p.hashes],
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.positions for p in parts]),
            [c for p in parts for c in p.contents],
            {n: [v for p in parts for v in p.columns[n]] for n in parts[0].columns},
        )


class SourceRows:
    """What a store keeps per row of ``source`` beside the features (ids, ``hashes``, labels,
    position, contents, kept columns), built once per encode and taken by position."""

    def __init__(self, source: DataSource, ids: list[str], hashes: list[bytes]) -> None:
        self.source = source
        self.ids = ids
        self.hashes = hashes
        self.labels = np.asarray(source.labels, dtype=np.int64)
        self.kept = kept_columns(source)

    def take(self, positions: list[int], features: Any) -> Rows:
        """The rows of the items at ``positions`` with their ``features``."""
        return Rows(
            np.asarray(features),
            [self.ids[i] for i in positions],
            [self.hashes[i] for i in positions],
            self.labels[positions],
            np.asarray(positions, dtype=np.int64),
            [reference(self.source, i) for i in positions],
            {k: [str(v[i]) for i in positions] for k, v in self.kept.items()},
        )
