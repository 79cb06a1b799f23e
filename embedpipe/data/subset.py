"""A view of some items of another source."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError
from .base import BaseSource, DataSource, content_hashes, kept_columns, reference


class SubsetSource(BaseSource):
    """Items ``indices`` of ``parent``, in that order, with the parent's ids, labels and classes.

    Parameters
    ----------
    parent
        Any DataSource.
    indices
        Positions in ``parent``: unique, in range (negative ones count from the end).
    """

    parent: DataSource
    indices: np.ndarray

    def __init__(self, parent: DataSource, indices: Sequence[int] | np.ndarray) -> None:
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(parent),):
                raise ConfigError(
                    f"boolean mask of shape {idx.shape} for a source of {len(parent)} items."
                )
            idx = np.flatnonzero(idx)
        if idx.size and idx.dtype.kind not in "iu":
            raise ConfigError(f"indices must be integers (or a boolean mask), not {idx.dtype}.")
        idx = idx.astype(np.int64).reshape(-1)
        n = len(parent)
        bad = (idx < -n) | (idx >= n)
        if bad.any():
            raise ConfigError(
                f"index {int(idx[bad][0])} is out of range for a source of {n} items."
            )
        idx = idx % n if n else idx
        if len(np.unique(idx)) != len(idx):
            raise ConfigError(
                "indices repeat an item; ids must stay unique, so give each index once."
            )
        # A view of a view points at the original source.
        if isinstance(parent, SubsetSource):
            idx = parent.indices[idx]
            parent = parent.parent
        self.parent = parent
        self.indices = idx
        self.modality = parent.modality
        self.ids = [parent.ids[k] for k in idx.tolist()]
        self.labels = np.asarray(parent.labels, dtype=np.int64)[idx]
        self.classes = list(parent.classes)

    def load(self, i: int) -> Any:
        return self.parent.load(int(self.indices[self._check_index(i)]))

    def content_hash(self, i: int) -> bytes:
        return self.parent.content_hash(int(self.indices[self._check_index(i)]))

    def reference(self, i: int) -> str:
        """The parent's reference of the item."""
        return reference(self.parent, int(self.indices[self._check_index(i)]))

    def kept_columns(self) -> dict[str, Sequence[str]]:
        """The parent's kept columns, for the view's items."""
        idx = self.indices.tolist()
        return {k: [v[j] for j in idx] for k, v in kept_columns(self.parent).items()}

    def content_hashes(self) -> list[bytes]:
        """Content hashes of the view's items (the parent's bulk path when it is cheaper)."""
        if len(self.indices) > len(self.parent) // 2:
            every = content_hashes(self.parent)
            return [every[k] for k in self.indices.tolist()]
        return [self.content_hash(i) for i in range(len(self))]

    def _describe_extra(self) -> dict[str, Any]:
        return {"subset_of": self.parent.describe()}


def subset(source: DataSource, indices: Sequence[int] | np.ndarray) -> SubsetSource:
    """A DataSource view of ``source``'s items at ``indices`` (or a boolean mask), in order.

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.data import ArraySource
    >>> view = subset(ArraySource(["a", "b", "c"]), [2, 0])
    >>> view.ids, view.load(0)
    (['item-000002', 'item-000000'], 'c')
    """
    return SubsetSource(source, indices)
