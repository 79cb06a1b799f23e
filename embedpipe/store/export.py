"""Moving features out of a store: pandas, Arrow, Parquet, NumPy, CSV, Hugging Face datasets.

Every export holds the rows in the source's order with the same columns: ``id``,
``position`` (index in the source), ``label`` (-1 = none), ``label_name``, ``content`` (the text
or path / URL / key), the kept user columns, and ``features`` (a fixed-size list of float32;
CSV spreads it over ``f0 … f{D-1}``). Parquet and CSV are written batch by batch (flat memory);
NumPy writes ``features.npy`` through a memory map.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ..errors import ConfigError, Fix, StoreError
from .space import is_no_space

if TYPE_CHECKING:
    import pyarrow as pa

    from .reader import FeatureStore

ExportFormat = Literal["parquet", "npy", "csv", "hf"]
FORMATS: tuple[str, ...] = ("parquet", "npy", "csv", "hf")
BATCH = 8192


def _batches(fs: FeatureStore, features: bool, batch_size: int = BATCH) -> Iterator[pa.Table]:
    import pyarrow as pa

    classes = fs.classes
    names = fs.column_names
    contents = fs.contents
    cols = {c: fs.column(c) for c in names}
    for b in fs.iter_batches(batch_size):
        stop = b.start + len(b.ids)
        labels = b.labels
        data: dict[str, Any] = {
            "id": pa.array(b.ids.tolist(), pa.string()),
            "position": pa.array(
                b.positions if b.positions is not None else np.arange(b.start, stop)
            ),
            "label": pa.array(labels, pa.int64()),
            "label_name": pa.array(
                [classes[k] if 0 <= k < len(classes) else None for k in labels.tolist()],
                pa.string(),
            ),
            "content": pa.array(contents[b.start : stop].tolist(), pa.string()),
        }
        for c in names:
            data[c] = pa.array(cols[c][b.start : stop].tolist(), pa.string())
        if features:
            flat = pa.array(np.ascontiguousarray(b.features, np.float32).ravel(), pa.float32())
            data["features"] = pa.FixedSizeListArray.from_arrays(flat, fs.dim)
        yield pa.table(data)


def _schema(fs: FeatureStore, features: bool) -> pa.Schema:
    import pyarrow as pa

    fields = [
        pa.field("id", pa.string()),
        pa.field("position", pa.int64()),
        pa.field("label", pa.int64()),
        pa.field("label_name", pa.string()),
        pa.field("content", pa.string()),
        *(pa.field(c, pa.string()) for c in fs.column_names),
    ]
    if features:
        fields.append(pa.field("features", pa.list_(pa.float32(), fs.dim)))
    meta = {
        "embedpipe": json.dumps(
            {
                "store": str(fs.path),
                "fingerprint": fs.fingerprint,
                "backbone": fs.backbone,
                "classes": fs.classes,
                "precision": fs.precision,
                "dim": fs.dim,
            },
            default=str,
        )
    }
    return pa.schema(fields, metadata=meta)


def to_arrow(fs: FeatureStore, features: bool = True) -> pa.Table:
    """A store's rows as one :class:`pyarrow.Table` (in memory), in source order.

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.store import FeatureStore, StoreWriter
    >>> w = StoreWriter.create("a.h5", dim=2, fingerprint="fp", backbone={}, classes=["x"])
    >>> w.append(np.ones((2, 2)), ["b", "a"], [bytes(16)] * 2, [0, -1], positions=[1, 0])
    >>> w.finalize()
    >>> t = FeatureStore("a.h5").to_arrow()
    >>> t.column("id").to_pylist(), t.column("label_name").to_pylist(), t.num_columns
    (['a', 'b'], [None, 'x'], 6)
    """
    import pyarrow as pa

    schema = _schema(fs, features)
    parts = [t.cast(schema) for t in _batches(fs, features)]
    return pa.concat_tables(parts) if parts else schema.empty_table()


def to_pandas(fs: FeatureStore, features: bool = True) -> Any:
    """A store's rows as a :class:`pandas.DataFrame`, in source order; ``features`` is a column
    of 1-D float32 arrays (``np.stack(df.features)`` gives the matrix).

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.store import FeatureStore, StoreWriter
    >>> w = StoreWriter.create("p.h5", dim=2, fingerprint="fp", backbone={})
    >>> w.append(np.eye(2), ["a", "b"], [bytes(16)] * 2, contents=["one", "two"])
    >>> w.finalize()
    >>> df = FeatureStore("p.h5").to_pandas()
    >>> df[["id", "content"]].values.tolist(), np.stack(df.features).shape
    ([['a', 'one'], ['b', 'two']], (2, 2))
    """
    return to_arrow(fs, features).to_pandas()


def export(
    store: str | Path,
    out: str | Path,
    to: ExportFormat = "parquet",
    *,
    overwrite: bool = False,
    batch_size: int = BATCH,
    allow_incomplete: bool = False,
) -> Path:
    """Write a store's rows to ``out`` as Parquet, NumPy, CSV or a Hugging Face dataset.

    Parameters
    ----------
    store
        The feature store (one file or a sharded master).
    out
        ``parquet`` / ``csv``: a file. ``npy``: a folder (``features.npy``, ``labels.npy``,
        ``positions.npy``, ``ids.npy``, ``meta.json``). ``hf``: a folder that
        ``datasets.load_from_disk`` opens.
    to
        ``"parquet"``, ``"npy"``, ``"csv"`` or ``"hf"``.
    overwrite
        Replace ``out`` if it exists.
    allow_incomplete
        Export the rows of an unfinished store (an interrupted encode); refused by default.

    The export is written to a temporary name beside ``out`` and renamed to ``out`` when whole:
    an export that is killed or runs out of space leaves no ``out`` that looks complete.

    Returns
    -------
    Path
        ``out``.

    Examples
    --------
    >>> import numpy as np, pyarrow.parquet as pq
    >>> from embedpipe.store import StoreWriter
    >>> w = StoreWriter.create("e.h5", dim=3, fingerprint="fp", backbone={})
    >>> w.append(np.eye(3), ["a", "b", "c"], [bytes(16)] * 3)
    >>> w.finalize()
    >>> pq.read_table(export("e.h5", "e.parquet")).num_rows
    3
    """
    from .reader import FeatureStore

    if to not in FORMATS:
        import difflib

        near = difflib.get_close_matches(str(to), FORMATS, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise ConfigError(f"export format {to!r} is unknown; {hint}use one of {list(FORMATS)}.")
    out = Path(out)
    if out.exists() and not overwrite:
        raise StoreError(f"{str(out)!r} already exists", Fix("; pass ", overwrite=True), ".")
    out.parent.mkdir(parents=True, exist_ok=True)
    write = {"parquet": _parquet, "csv": _csv, "npy": _npy, "hf": _hf}[to]
    with FeatureStore(store) as fs:
        fs.require_complete(allow_incomplete)
        _remove_dead_partials(out)
        tmp = out.with_name(f".{out.name}.{os.getpid()}{PARTIAL}")
        _remove(tmp)
        try:
            write(fs, tmp, batch_size)
            _replace(tmp, out)
        except BaseException as e:
            _remove(tmp)
            if is_no_space(e):
                raise StoreError(
                    f"no space left on device while exporting {str(fs.path)!r} to {str(out)!r}; "
                    "nothing was written; free space and run the same command again."
                ) from e
            raise
    return out


#: Suffix of an export being written (``.<name>.<pid>.exporting`` beside its target).
PARTIAL = ".exporting"


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def _replace(tmp: Path, out: Path) -> None:
    """Put a finished export in place: a file by one rename; a folder by moving the old one
    aside first (two renames; a kill between them leaves the new export under its temporary
    name and the old one aside, never a half-written ``out``)."""
    if tmp.is_dir() and out.exists():
        old = out.with_name(f".{out.name}.{os.getpid()}.old")
        _remove(old)
        os.replace(out, old)
        os.replace(tmp, out)
        _remove(old)
    else:
        os.replace(tmp, out)


def _remove_dead_partials(out: Path) -> None:
    """Temporary exports to ``out`` left by processes that died (a kill mid-export)."""
    for p in out.parent.glob(f".{glob.escape(out.name)}.*{PARTIAL}"):
        pid = p.name[len(out.name) + 2 : -len(PARTIAL)]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(p)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parquet(fs: FeatureStore, out: Path, batch_size: int) -> None:
    import pyarrow.parquet as pq

    schema = _schema(fs, True)
    with pq.ParquetWriter(out, schema) as w:
        for t in _batches(fs, True, batch_size):
            w.write_table(t.cast(schema))


def _csv(fs: FeatureStore, out: Path, batch_size: int) -> None:
    head = ["id", "position", "label", "label_name", "content", *fs.column_names]
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*head, *(f"f{j}" for j in range(fs.dim))])
        for t in _batches(fs, True, batch_size):
            cols = [t.column(c).to_pylist() for c in head]
            feats = np.asarray(t.column("features").combine_chunks().flatten()).reshape(-1, fs.dim)
            for k in range(t.num_rows):
                w.writerow([*(c[k] for c in cols), *(repr(float(v)) for v in feats[k])])


def _npy(fs: FeatureStore, out: Path, batch_size: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    n = len(fs)
    x = np.lib.format.open_memmap(
        out / "features.npy", mode="w+", dtype=np.float32, shape=(n, fs.dim)
    )
    for b in fs.iter_batches(batch_size):
        x[b.start : b.start + len(b.ids)] = b.features
    x.flush()
    del x
    np.save(out / "labels.npy", fs.labels)
    np.save(out / "positions.npy", fs.positions)
    np.save(out / "ids.npy", np.array(fs.ids.tolist(), dtype=str))
    meta = {
        "store": str(fs.path),
        "fingerprint": fs.fingerprint,
        "backbone": fs.backbone,
        "classes": fs.classes,
        "precision": fs.precision,
        "n_rows": n,
        "dim": fs.dim,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, default=str))


def _hf(fs: FeatureStore, out: Path, batch_size: int) -> None:
    import datasets

    table = to_arrow(fs, True)
    ds = datasets.Dataset(table)
    ds.save_to_disk(str(out))
