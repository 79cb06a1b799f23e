"""Sharded feature stores: one shard file per worker, merged by a master file of virtual datasets.

A sharded store is a folder of complete shard stores (each an ordinary feature store written by
one worker) and a master ``.h5`` file whose ``features``, ``ids``, ``content_hash`` and
``labels`` are HDF5 virtual datasets over the shards, in shard order, with paths relative to
the master (so the master and its folder can be moved together). Readers open the master with
:class:`~embedpipe.store.FeatureStore` like any store.

HDF5 silently fills the rows of a missing source file with the fill value, so opening a master
checks every shard first (:func:`check_shards`): a missing, incomplete, resized or foreign shard
is a :class:`~embedpipe.errors.StoreError`, never rows of NaN.

Layout::

    digits.h5                 master: virtual datasets + attrs["shards"] (JSON table)
    digits.shards/
        3f2a...c1.h5          one complete shard store per shard key
        9b07...e4.h5
        5c11...a0.h5.partial  a shard being written (resumable), renamed when complete

This module owns the shard folder's lifecycle: file names (:func:`partial_path`), partial →
final (:func:`finish_shard`), listing (:func:`shard_files`, :func:`stale_shards`), cleaning
(:func:`remove_stale`) and cheap fingerprint peeks (:func:`peek_fingerprint`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import FingerprintMismatchError, StoreError
from . import format as fmt

SHARDS_ATTR = "shards"
SHARD_SUFFIX = ".h5"
#: A shard being written: ``<key>.h5.partial``, renamed to ``<key>.h5`` when complete.
PARTIAL_SUFFIX = ".partial"
#: Temporary names of files being created, recovered or merged (never a usable store).
TEMP_SUFFIXES = (".creating", ".recover", ".merging", ".sorting")
#: A store's writer-lock files (see :mod:`embedpipe.store.lock`).
LOCK_SUFFIXES = (".lock", ".lock.owner")


@dataclass(frozen=True)
class ShardEntry:
    """One row of a master's shard table.

    ``file`` is relative to the master's folder (POSIX separators); ``rows`` is the number of
    committed rows the master maps from it; ``key`` its cache key (the file's stem).
    """

    file: str
    rows: int
    key: str

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "rows": self.rows, "key": self.key}


def shards_dir(master: str | Path) -> Path:
    """The folder holding a master's shards: ``x.h5`` → ``x.shards/``."""
    p = Path(master)
    return p.with_suffix(".shards") if p.suffix == ".h5" else p.with_name(p.name + ".shards")


def partial_path(final: str | Path) -> Path:
    """Where a shard is written until complete: ``<key>.h5`` → ``<key>.h5.partial``.

    Examples
    --------
    >>> partial_path("x.shards/ab12.h5").name
    'ab12.h5.partial'
    """
    p = Path(final)
    return p.with_name(p.name + PARTIAL_SUFFIX)


def finish_shard(partial: str | Path, final: str | Path) -> Path:
    """Rename a complete partial shard (its writer closed) to its final name, atomically on
    one filesystem, and drop the partial's released lock files."""
    os.replace(partial, final)
    for suffix in LOCK_SUFFIXES:
        Path(str(partial) + suffix).unlink(missing_ok=True)
    return Path(final)


def is_shard_file(path: str | Path) -> bool:
    """Whether ``path`` is named like a complete or partial shard store.

    Examples
    --------
    >>> is_shard_file("ab12.h5.partial"), is_shard_file("ab12.h5.creating")
    (True, False)
    """
    return Path(path).name.endswith((SHARD_SUFFIX, SHARD_SUFFIX + PARTIAL_SUFFIX))


def shard_files(sdir: str | Path) -> list[Path]:
    """The complete and partial shard stores in a shard folder, sorted (none if no folder)."""
    d = Path(sdir)
    return sorted(p for p in d.iterdir() if is_shard_file(p)) if d.is_dir() else []


def stale_shards(sdir: str | Path, keys: set[str]) -> list[Path]:
    """Complete shards of a folder whose key is not in ``keys`` (an earlier plan's)."""
    d = Path(sdir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("*" + SHARD_SUFFIX) if p.stem not in keys)


def remove_stale(sdir: str | Path, keys: set[str]) -> None:
    """Delete every shard-folder file but the complete shards of ``keys``: earlier plans'
    shards, partial shards and temporary files of dead writers."""
    d = Path(sdir)
    if not d.is_dir():
        return
    for p in d.iterdir():
        name = p.name
        if name.endswith(SHARD_SUFFIX) and p.stem in keys:
            continue
        if is_shard_file(p) or name.endswith(TEMP_SUFFIXES + LOCK_SUFFIXES):
            p.unlink(missing_ok=True)


def peek_fingerprint(path: str | Path) -> str | None:
    """The backbone fingerprint a store file records, or ``None`` if it cannot be read."""
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return str(f.attrs.get("fingerprint", ""))
    except OSError:
        return None


def discard_unreadable(partial: str | Path) -> bool:
    """Delete a partial shard its dead writer left unreadable (it was never complete).

    Returns whether it was deleted.
    """
    from .reader import FeatureStore

    p = Path(partial)
    if not p.exists():
        return False
    try:
        FeatureStore(p).close()
    except StoreError:
        p.unlink()
        return True
    return False


def is_sharded(path: str | Path) -> bool:
    """Whether ``path`` is the master file of a sharded store (False if it does not exist)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with h5py.File(p, "r") as f:
            return SHARDS_ATTR in f.attrs
    except OSError:
        return False


def shard_table(f: h5py.File) -> list[ShardEntry]:
    """The shard table of an open master file."""
    return [
        ShardEntry(str(d["file"]), int(d["rows"]), str(d["key"]))
        for d in fmt.loads(f.attrs[SHARDS_ATTR])
    ]


def read_shard_table(master: str | Path) -> list[ShardEntry]:
    """The shard table of a master file, without checking the shards."""
    from .reader import open_h5

    with open_h5(Path(master)) as f:
        if SHARDS_ATTR not in f.attrs:
            raise StoreError(
                f"{str(master)!r} is a single-file store, not the master of a sharded store."
            )
        return shard_table(f)


def shard_paths(master: str | Path) -> list[Path]:
    """Absolute paths of a master's shards, in row order."""
    root = Path(master).parent
    return [(root / e.file) for e in read_shard_table(master)]


def _rebuild_hint(master: Path) -> str:
    return (
        f"Run the same encode again (encode_sharded / `embedpipe encode --executor ...`) to "
        f"rebuild only the shards it lacks, or delete {str(master)!r} and its "
        f"{shards_dir(master).name}/ folder to start over."
    )


def check_shards(master: Path, f: h5py.File) -> None:
    """Check that every shard of an open master exists, is complete and holds its rows.

    Raises
    ------
    StoreError
        Naming every missing shard (or the first bad one) and the fix.
    """
    entries = shard_table(f)
    root = master.parent
    missing = [e for e in entries if not (root / e.file).is_file()]
    if missing:
        lost = sum(e.rows for e in missing)
        names = ", ".join(e.file for e in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise StoreError(
            f"sharded store {str(master)!r}: {len(missing)} of {len(entries)} shard files are "
            f"missing ({lost} rows): {names}. {_rebuild_hint(master)}"
        )
    fingerprint = str(f.attrs["fingerprint"])
    for e in entries:
        p = root / e.file
        try:
            with h5py.File(p, "r") as s:
                n = int(s.attrs["n_committed"])
                complete = bool(s.attrs["complete"])
                found = str(s.attrs["fingerprint"])
                n_feat = int(s[fmt.FEATURES].shape[0])
        except (OSError, KeyError) as exc:
            raise StoreError(
                f"sharded store {str(master)!r}: shard {str(p)!r} cannot be read ({exc}). "
                f"Delete it; {_rebuild_hint(master)}"
            ) from exc
        if found != fingerprint:
            raise FingerprintMismatchError(
                f"sharded store {str(master)!r}: shard {str(p)!r}",
                fingerprint,
                found,
                f"The shard was replaced by features of another backbone. Delete it; {_rebuild_hint(master)}",
            )
        if not complete or n != e.rows or n_feat < n:
            raise StoreError(
                f"sharded store {str(master)!r}: shard {str(p)!r} holds {n} committed rows "
                f"({'complete' if complete else 'incomplete'}) but the master maps {e.rows}. "
                f"The shard was changed after the merge. Delete it; {_rebuild_hint(master)}"
            )


def _relative(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()


def merge_shards(
    master: str | Path,
    shards: Sequence[str | Path],
    *,
    dataset_digest: str = "",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write the master file of a sharded store over complete shard stores, in the given order.

    The master is written to a temporary file and renamed into place, so a reader never sees a
    half-written master. Shards with no rows are listed (and checked on open) but map no rows.

    Parameters
    ----------
    master
        The master ``.h5`` file to write (replaced if it exists).
    shards
        Complete shard stores, all with the same fingerprint, dim, dtype and classes.
    dataset_digest
        The digest of the whole dataset (:func:`embedpipe.data.digest`).
    extra
        JSON-serialisable facts merged into the master's ``extra`` attribute.

    Returns
    -------
    Path
        The master file.

    Raises
    ------
    StoreError
        A shard is missing or incomplete, or shards disagree on dim, dtype or classes.
    FingerprintMismatchError
        Shards of different backbones.

    Examples
    --------
    >>> merge_shards("cache/x.h5", ["cache/x.shards/a.h5", "cache/x.shards/b.h5"])  # doctest: +SKIP
    """
    master = Path(master)
    if not shards:
        raise StoreError(f"merge_shards({str(master)!r}): no shards given.")
    root = master.parent
    root.mkdir(parents=True, exist_ok=True)
    entries: list[ShardEntry] = []
    first: dict[str, Any] | None = None
    err_ids: list[str] = []
    err_reasons: list[str] = []
    positions: list[np.ndarray] = []
    precisions: list[str] = []
    offset = 0
    for s in shards:
        p = Path(s)
        if not p.is_file():
            raise StoreError(f"merge_shards: shard {str(p)!r} does not exist; encode it first.")
        with h5py.File(p, "r") as f:
            a = f.attrs
            if not bool(a["complete"]):
                raise StoreError(
                    f"merge_shards: shard {str(p)!r} is incomplete; finish its encode first."
                )
            info = {
                "fingerprint": str(a["fingerprint"]),
                "dim": int(f[fmt.FEATURES].shape[1]),
                "dtype": str(f[fmt.FEATURES].dtype),
                "classes": fmt.loads(f[fmt.LABELS].attrs.get("classes", "[]")),
            }
            if first is None:
                first = {
                    **info,
                    "backbone": str(a["backbone"]),
                    "versions": str(a["versions"]),
                    "extra": fmt.loads(a.get("extra", "{}")),
                    "columns": sorted(f[fmt.COLUMNS]) if fmt.COLUMNS in f else [],
                }
            elif info["fingerprint"] != first["fingerprint"]:
                raise FingerprintMismatchError(
                    f"merge_shards: shard {str(p)!r}",
                    first["fingerprint"],
                    info["fingerprint"],
                    "All shards of a store must come from one backbone.",
                )
            else:
                for k in ("dim", "dtype", "classes"):
                    if info[k] != first[k]:
                        raise StoreError(
                            f"merge_shards: shard {str(p)!r} has {k} {info[k]!r}, the first shard {first[k]!r}."
                        )
            entries.append(ShardEntry(_relative(p, root), int(a["n_committed"]), p.stem))
            # Positions in the whole source: a shard's own positions plus the items before it.
            n_rows = int(a["n_committed"])
            n_err = int(f[fmt.ERR_IDS].shape[0]) if fmt.ERR_IDS in f else 0
            local = (f[fmt.POSITIONS][:n_rows] if fmt.POSITIONS in f else np.arange(n_rows)).astype(
                np.int64
            )
            positions.append(local + offset)
            offset += int(a.get("n_source_items", n_rows + n_err))
            precisions.append(str(a.get("precision", "")))
            if fmt.ERR_IDS in f:
                err_ids += f[fmt.ERR_IDS].asstr()[:].tolist()
                err_reasons += f[fmt.ERR_REASONS].asstr()[:].tolist()
    assert first is not None
    n = sum(e.rows for e in entries)
    dim, dtype = first["dim"], first["dtype"]
    layouts = {
        fmt.FEATURES: h5py.VirtualLayout(shape=(n, dim), dtype=dtype),
        fmt.IDS: h5py.VirtualLayout(shape=(n,), dtype=fmt.STR_DTYPE),
        fmt.HASHES: h5py.VirtualLayout(shape=(n, fmt.HASH_BYTES), dtype=np.uint8),
        fmt.LABELS: h5py.VirtualLayout(shape=(n,), dtype=np.int64),
        fmt.CONTENT: h5py.VirtualLayout(shape=(n,), dtype=fmt.STR_DTYPE),
        **{
            fmt.column_path(c): h5py.VirtualLayout(shape=(n,), dtype=fmt.STR_DTYPE)
            for c in first["columns"]
        },
    }
    start = 0
    for e in entries:
        if e.rows:
            for name, layout in layouts.items():
                tail = layout.shape[1:]
                # The source selection is the committed rows only (a shard may be longer).
                src = h5py.VirtualSource(e.file, name, shape=(e.rows, *tail))
                layout[start : start + e.rows] = src
        start += e.rows
    from .lock import temp_path

    tmp = temp_path(master, "merging")
    with h5py.File(tmp, "w", libver=fmt.LIBVER) as f:
        # NaN, not 0, in unmapped rows: should a check ever be bypassed, verify() catches it.
        f.create_virtual_dataset(fmt.FEATURES, layouts[fmt.FEATURES], fillvalue=np.nan)
        f.create_virtual_dataset(fmt.IDS, layouts[fmt.IDS])
        f.create_virtual_dataset(fmt.HASHES, layouts[fmt.HASHES], fillvalue=0)
        lab = f.create_virtual_dataset(fmt.LABELS, layouts[fmt.LABELS], fillvalue=-1)
        lab.attrs["classes"] = fmt.dumps(first["classes"])
        f.create_virtual_dataset(fmt.CONTENT, layouts[fmt.CONTENT])
        for c in first["columns"]:
            f.create_virtual_dataset(fmt.column_path(c), layouts[fmt.column_path(c)])
        f.create_dataset(
            fmt.POSITIONS,
            data=np.concatenate(positions) if positions else np.empty(0, np.int64),
            dtype=np.int64,
        )
        f.create_dataset(fmt.ERR_IDS, data=np.array(err_ids, dtype=object), dtype=fmt.STR_DTYPE)
        f.create_dataset(
            fmt.ERR_REASONS, data=np.array(err_reasons, dtype=object), dtype=fmt.STR_DTYPE
        )
        a = f.attrs
        a["schema_version"] = fmt.SCHEMA_VERSION
        a["backbone"] = first["backbone"]
        a["fingerprint"] = first["fingerprint"]
        a["dataset_digest"] = dataset_digest
        a["n_committed"] = np.int64(n)
        a["complete"] = np.int8(1)
        a["row_order"] = "source"
        a["precision"] = "+".join(sorted({p for p in precisions if p}))
        a["feature_dtype"] = str(dtype)
        a["versions"] = first["versions"]
        a["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        a["extra"] = fmt.dumps({**first["extra"], **(extra or {}), "n_shards": len(entries)})
        a[SHARDS_ATTR] = fmt.dumps([e.to_dict() for e in entries])
    os.replace(tmp, master)
    return master
