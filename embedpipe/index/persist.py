"""Saving and loading an index folder: ``index.faiss``, ``rows.h5`` and ``meta.json``.

No pickle anywhere: the FAISS index is written by ``faiss.write_index``, ids/labels/sources
(and, when the stores record them, each row's ``content`` and the index-row → store-row
``order``) are HDF5 datasets, metadata is JSON. A save goes to a temporary sibling folder renamed into
place, so a crash never leaves a half-written index behind.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss
import h5py
import numpy as np
from pydantic import ValidationError

from ..errors import ConfigError, Fix, StoreError
from .meta import FORMAT, FORMAT_VERSION, IndexMeta

CONTENT_BATCH = 8192
INDEX_FILE = "index.faiss"
ROWS_FILE = "rows.h5"
META_FILE = "meta.json"


def is_index_dir(path: str | Path) -> bool:
    """True when ``path`` is a folder holding an embedpipe index."""
    p = Path(path)
    try:
        return (p / META_FILE).is_file() and json.loads((p / META_FILE).read_text()).get(
            "format"
        ) == FORMAT
    except (OSError, ValueError):
        return False


def save_files(
    path: str | Path,
    index: faiss.Index,
    meta: IndexMeta,
    ids: np.ndarray,
    labels: np.ndarray,
    source: np.ndarray,
    *,
    order: np.ndarray | None = None,
    contents: Callable[[np.ndarray], list[str | None]] | None = None,
    overwrite: bool = False,
    hashes: np.ndarray | None = None,
    columns: Callable[[str], np.ndarray] | None = None,
    delta_rows: np.ndarray | None = None,
    delta_vectors: np.ndarray | None = None,
    same_index_as: Path | None = None,
) -> Path:
    """Write an index folder atomically; an existing index is replaced only with ``overwrite``.

    ``contents(rows)`` gives the content of index rows; it is copied in batches of
    :data:`CONTENT_BATCH` rows (flat memory), ``""`` standing for none. ``hashes`` (each row's
    content hash), ``columns(name)`` (the kept columns ``meta.columns``) and the rows pending
    a merge (``delta_rows``, ``delta_vectors``) are what updates and filters need.
    ``same_index_as``: a saved ``index.faiss`` holding this very index (an update that added
    nothing to FAISS): it is hard-linked, not written again.

    The new folder is written beside the old one and swapped in by one atomic exchange
    (``renameat2(RENAME_EXCHANGE)`` on Linux): a reader, or a process killed at any moment,
    sees either the old index or the new one, whole.
    """
    dest = Path(path)
    if dest.exists():
        if not dest.is_dir():
            raise ConfigError(
                f"{str(dest)!r} is a file; an index is saved as a folder. Choose another path."
            )
        empty = not any(dest.iterdir())
        if not empty and not is_index_dir(dest):
            raise ConfigError(
                f"{str(dest)!r} exists and is not an embedpipe index folder; refusing to replace "
                "it. Choose another path."
            )
        if not empty and not overwrite:
            raise ConfigError(
                f"index {str(dest)!r} already exists",
                Fix("; pass ", overwrite=True, does=" to replace it"),
                ".",
            )
    dest.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(dest)
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        linked = False
        if same_index_as is not None:
            try:
                os.link(same_index_as, tmp / INDEX_FILE)
                linked = True
            except OSError:
                pass
        if not linked:
            faiss.write_index(index, str(tmp / INDEX_FILE))
        with h5py.File(tmp / ROWS_FILE, "w") as f:
            f.create_dataset(
                "ids", data=np.asarray(ids, dtype=object), dtype=h5py.string_dtype("utf-8")
            )
            f.create_dataset("labels", data=np.asarray(labels, np.int64))
            f.create_dataset("source", data=np.asarray(source, np.int16))
            if order is not None:
                f.create_dataset("order", data=np.asarray(order, np.int64))
            if hashes is not None:
                f.create_dataset("content_hash", data=np.asarray(hashes).astype("S16"))
            if delta_rows is not None and len(delta_rows):
                f.create_dataset("delta_rows", data=np.asarray(delta_rows, np.int64))
                f.create_dataset("delta_vectors", data=np.asarray(delta_vectors, np.float32))
            if columns is not None:
                for name in meta.columns:
                    f.create_dataset(
                        f"columns/{name}",
                        data=np.asarray(columns(name), dtype=object).astype(str).astype(object),
                        dtype=h5py.string_dtype("utf-8"),
                    )
            if contents is not None:
                n = len(ids)
                ds = f.create_dataset(
                    "content",
                    shape=(n,),
                    dtype=h5py.string_dtype("utf-8"),
                    chunks=(min(max(n, 1), 1024),),
                )
                for s in range(0, n, CONTENT_BATCH):
                    rows = np.arange(s, min(n, s + CONTENT_BATCH))
                    ds[s : s + len(rows)] = [c or "" for c in contents(rows)]
        (tmp / META_FILE).write_text(
            json.dumps(meta.model_dump(mode="json"), indent=2, default=str)
        )
        if dest.exists():
            swap_dirs(tmp, dest)  # tmp now holds the old index
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _clean_stale(dest: Path) -> None:
    """Remove the temporary folders of saves whose process died (a kill -9 mid-save)."""
    for p in dest.parent.glob(f".{dest.name}.tmp-*"):
        try:
            pid = int(p.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
        except PermissionError:  # alive, another user's
            continue


def swap_dirs(new: Path, dest: Path) -> None:
    """Put folder ``new`` at ``dest`` and the old ``dest`` at ``new``, atomically where the
    system can (Linux ``renameat2(RENAME_EXCHANGE)``); elsewhere by two renames, the old folder
    kept beside until the second is done."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        fn = None
    if fn is not None:
        at_fdcwd, rename_exchange = -100, 2
        rc = fn(at_fdcwd, os.fsencode(new), at_fdcwd, os.fsencode(dest), rename_exchange)
        if rc == 0:
            return
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    os.replace(dest, old)
    os.replace(new, dest)
    os.replace(old, new)


def load_files(path: str | Path) -> tuple[faiss.Index, IndexMeta, dict[str, Any]]:
    """Read an index folder; every inconsistency is a :class:`StoreError` naming the file."""
    p = Path(path)
    if not p.is_dir():
        hint = " (that is a file: give the index folder)" if p.is_file() else ""
        raise ConfigError(
            f"index {str(p)!r} does not exist{hint}. Build one with `embedpipe index`."
        )
    meta_file = p / META_FILE
    if not meta_file.is_file():
        raise ConfigError(f"{str(p)!r} is not an embedpipe index folder (no {META_FILE}).")
    try:
        raw = json.loads(meta_file.read_text())
    except ValueError as e:
        raise StoreError(
            f"{str(meta_file)!r} is not valid JSON ({e}); rebuild the index."
        ) from None
    if raw.get("format") != FORMAT:
        raise ConfigError(
            f"{str(p)!r} is not an embedpipe index folder ({META_FILE} has format {raw.get('format')!r})."
        )
    if int(raw.get("format_version", 0)) > FORMAT_VERSION:
        raise StoreError(
            f"{str(p)!r} has index format version {raw['format_version']}, newer than this "
            f"embedpipe understands ({FORMAT_VERSION}); upgrade embedpipe."
        )
    try:
        meta = IndexMeta.model_validate(raw)
    except ValidationError as e:
        what = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise StoreError(f"{str(meta_file)!r} is malformed ({what}); rebuild the index.") from None
    try:
        index = faiss.read_index(str(p / INDEX_FILE))
    except RuntimeError as e:
        last = str(e).strip().splitlines()[-1][:200]
        raise StoreError(
            f"cannot read {str(p / INDEX_FILE)!r} ({last}); rebuild the index."
        ) from None
    try:
        with h5py.File(p / ROWS_FILE, "r") as f:
            rows = {
                "ids": f["ids"].asstr()[:].astype(object),
                "labels": f["labels"][:].astype(np.int64),
                "source": f["source"][:].astype(np.int16),
            }
            if "content_hash" in f:
                rows["content_hash"] = f["content_hash"][:].astype("S16")
            extra = {}
            if "order" in f:
                extra["order"] = f["order"][:].astype(np.int64)
            if "delta_rows" in f:
                extra["delta_rows"] = f["delta_rows"][:].astype(np.int64)
                extra["delta_vectors"] = f["delta_vectors"][:].astype(np.float32)
    except (OSError, KeyError) as e:
        raise StoreError(f"cannot read {str(p / ROWS_FILE)!r} ({e}); rebuild the index.") from None
    sizes = {f"rows.h5:{k}": len(v) for k, v in rows.items()}
    order = extra.get("order")
    n_delta = len(extra.get("delta_rows", ()))
    in_faiss = int(index.ntotal) if order is None else int((order >= 0).sum())
    sizes["index.faiss (live) + pending"] = in_faiss + n_delta
    if order is not None and len(order) != index.ntotal:
        sizes["rows.h5:order"] = -len(order)
    rows.update(extra)
    if any(s != meta.n for s in sizes.values()) or index.d != meta.dim:
        raise StoreError(
            f"index {str(p)!r} is inconsistent: meta.json says {meta.n} x {meta.dim}, found "
            f"{sizes} and dimension {index.d}; rebuild the index."
        )
    return index, meta, rows


def folder_contents(path: str | Path) -> Callable[[np.ndarray], list[str | None]]:
    """A reader of the ``content`` of index rows in a saved folder's ``rows.h5`` (only the
    rows asked for are read; ``None`` where a row has none).

    The file is opened now and held open by the reader: an update that swaps a new folder in
    (and deletes the old one) leaves this reader on the rows of the index it was loaded with.
    """
    f = h5py.File(Path(path) / ROWS_FILE, "r")

    def read(rows: np.ndarray) -> list[str | None]:
        rows = np.asarray(rows, np.int64)
        if rows.size == 0:
            return []
        uniq, inv = np.unique(rows, return_inverse=True)
        if "content" not in f:
            return [None] * rows.size
        got = f["content"].asstr()[uniq]
        return [str(got[i]) or None for i in inv.tolist()]

    return read


def folder_columns(path: str | Path) -> Callable[[str], np.ndarray]:
    """A reader of the kept columns saved in a folder's ``rows.h5`` (held open, as
    :func:`folder_contents`)."""
    f = h5py.File(Path(path) / ROWS_FILE, "r")

    def read(name: str) -> np.ndarray:
        return f[f"columns/{name}"].asstr()[:].astype(object)

    return read
