"""Several feature stores read as one corpus: global rows, ids, contents, labels and blocks of
features, without loading the features whole."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import Arg, ConfigError, Fix
from ..store import FeatureStore, check_compatible

#: A content hash of sixteen zero bytes means "no hash recorded" (hand-made stores).
NO_HASH = bytes(16)


@dataclass
class Corpus:
    """The rows of several stores, one after the other (store order, then source order).

    Attributes
    ----------
    paths
        The stores.
    splits
        A short name per store (its file stem; made unique).
    offsets
        ``offsets[s]`` is store ``s``'s first global row; ``offsets[-1]`` the total.
    ids, contents, hashes, labels
        Per global row; ``labels`` index :attr:`classes` (the union of the stores' classes, in
        first-seen order), ``-1`` where a row has none.
    """

    paths: list[Path]
    splits: list[str]
    offsets: np.ndarray
    ids: np.ndarray
    contents: np.ndarray
    hashes: np.ndarray
    labels: np.ndarray
    classes: list[str]
    dim: int
    fingerprint: str
    identity: list[dict[str, object]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def store_of(self) -> np.ndarray:
        """The store number of every global row."""
        return np.repeat(np.arange(len(self.paths)), np.diff(self.offsets))

    def ref(self, row: int) -> str:
        """How a row is named in tables: its id, prefixed by its split when there are several
        stores (``test:42``)."""
        if len(self.paths) == 1:
            return str(self.ids[row])
        s = int(np.searchsorted(self.offsets, row, side="right") - 1)
        return f"{self.splits[s]}:{self.ids[row]}"

    def iter_blocks(self, block_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(first global row, float32 features)`` blocks of at most ``block_rows`` rows,
        read store by store (memory stays flat in the corpus size)."""
        for s, path in enumerate(self.paths):
            with FeatureStore(path) as fs:
                n = len(fs)
                for start in range(0, n, block_rows):
                    stop = min(n, start + block_rows)
                    yield int(self.offsets[s]) + start, fs.read(slice(start, stop))

    def read_rows(self, rows: np.ndarray) -> np.ndarray:
        """Features of global ``rows`` (any order) as float32."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.size, self.dim), np.float32)
        which = np.searchsorted(self.offsets, rows, side="right") - 1
        for s, path in enumerate(self.paths):
            sel = np.flatnonzero(which == s)
            if sel.size:
                with FeatureStore(path) as fs:
                    out[sel] = fs.read(rows[sel] - self.offsets[s])
        return out


def _rows_digest(fs: FeatureStore, hashes: np.ndarray) -> str:
    """A digest of a store's rows: every content hash and id, and a sample of feature rows
    (first, middle and last 32), so hand-made stores without a dataset digest differ too."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    h.update(np.ascontiguousarray(hashes).tobytes())
    h.update("\0".join(map(str, fs.ids.tolist())).encode())
    n = len(fs)
    for start in sorted({0, max(0, n // 2 - 16), max(0, n - 32)}):
        h.update(fs.read(slice(start, min(n, start + 32))).tobytes())
    return h.hexdigest()


def _as_bytes(h: np.ndarray) -> np.ndarray:
    """Content hashes as one ``S16`` value per row (stores keep them as ``[n, 16]`` bytes)."""
    h = np.asarray(h)
    if h.ndim == 2:
        return np.ascontiguousarray(h, dtype=np.uint8).view("S16").ravel()
    return h.astype("S16")


def _split_names(paths: Sequence[Path]) -> list[str]:
    names = [p.stem for p in paths]
    if len(set(names)) == len(names):
        return names
    return [f"{i}-{n}" for i, n in enumerate(names)]


def open_corpus(
    stores: Sequence[str | Path],
    *,
    names: Sequence[str] | None = None,
    allow_mixed_precision: bool = False,
) -> Corpus:
    """Read the row metadata of ``stores`` (not their features) into a :class:`Corpus`.

    ``names`` names each store's split in tables (default: the file stems, made unique).

    Raises
    ------
    ConfigError
        No stores, or one store given twice.
    FingerprintMismatchError, StoreError
        Stores of different backbones or dimensions (see
        :func:`embedpipe.store.check_compatible`), a missing or unreadable store.

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.store import StoreWriter
    >>> w = StoreWriter.create("c.h5", dim=2, fingerprint="fp", backbone={}, classes=["a", "b"])
    >>> w.append(np.eye(2), ["x", "y"], [bytes(16)] * 2, labels=[0, 1]); w.finalize()
    >>> c = open_corpus(["c.h5"])
    >>> len(c), c.classes, c.labels.tolist()
    (2, ['a', 'b'], [0, 1])
    """
    if not stores:
        raise ConfigError(
            "curate needs at least one feature store",
            Fix("; pass ", Arg("stores", py="[PATH, ...]")),
            ".",
        )
    paths = [Path(s) for s in stores]
    resolved = [p.resolve() for p in paths]
    dup = next((p for i, p in enumerate(resolved) if p in resolved[:i]), None)
    if dup is not None:
        raise ConfigError(f"store {str(dup)!r} is given twice; pass each store once.")
    if names is not None and (len(names) != len(paths) or len(set(names)) != len(names)):
        raise ConfigError(
            f"names={list(names)} must give one distinct name per store ({len(paths)} stores)."
        )
    info = check_compatible(paths, allow_mixed_precision=allow_mixed_precision)
    ids, contents, hashes, labels, sizes = [], [], [], [], [0]
    identity: list[dict[str, object]] = []
    classes: list[str] = []
    for p in paths:
        with FeatureStore(p) as fs:
            lab = fs.labels
            own = fs.classes or [str(i) for i in range(int(lab.max(initial=-1)) + 1)]
            for c in own:
                if c not in classes:
                    classes.append(c)
            remap = np.array([classes.index(c) for c in own] + [-1], dtype=np.int64)
            if own:
                bad = (lab >= len(own)) | (lab < -1)
                lab = np.where(bad, -1, lab)
                lab = remap[np.where(lab < 0, len(own), lab)]
            ids.append(np.asarray(fs.ids, dtype=object))
            contents.append(np.asarray(fs.contents, dtype=object))
            hashes.append(np.asarray(fs.content_hashes))
            labels.append(lab.astype(np.int64))
            sizes.append(len(fs))
            identity.append(
                {
                    "split": None,
                    "fingerprint": fs.fingerprint,
                    "dataset_digest": fs.dataset_digest,
                    "n": len(fs),
                    "rows": _rows_digest(fs, hashes[-1]),
                }
            )
    splits = list(names) if names is not None else _split_names(paths)
    for ident, name in zip(identity, splits, strict=True):
        ident["split"] = name
    return Corpus(
        paths=paths,
        splits=splits,
        offsets=np.cumsum(sizes).astype(np.int64),
        ids=np.concatenate(ids) if ids else np.empty(0, object),
        contents=np.concatenate(contents),
        hashes=np.concatenate([_as_bytes(h) for h in hashes]),
        labels=np.concatenate(labels),
        classes=classes,
        dim=int(info["dim"]),
        fingerprint=str(info["fingerprint"]),
        identity=identity,
    )
