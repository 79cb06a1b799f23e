"""Tables (CSV / TSV / JSONL / Parquet) of image paths or texts, with optional ids and labels."""

from __future__ import annotations

import difflib
import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..errors import ConfigError, ItemError
from ._paths import nearby
from .base import BaseSource, Modality, text_content_hash
from .image_folder import FileImageSource
from .labels import encode_labels

TableFormat = Literal["csv", "tsv", "jsonl", "parquet"]

_COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")
_FORMATS: dict[str, TableFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
TABLE_SUFFIXES = tuple(_FORMATS)


def table_format(path: str | Path) -> TableFormat:
    """The table format named by a file's extension (a compression suffix may follow).

    Raises
    ------
    ConfigError
        An extension that is not a supported table format.
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSIONS:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise ConfigError(
            f"{str(path)!r}: unknown table format; use one of {', '.join(TABLE_SUFFIXES)} "
            f"(CSV/TSV/JSONL may be compressed: {', '.join(_COMPRESSIONS)})."
        )
    if fmt == "parquet" and Path(path).suffix.lower() in _COMPRESSIONS:
        raise ConfigError(f"{str(path)!r}: Parquet compresses internally; store it uncompressed.")
    return fmt


def is_table(path: str | Path) -> bool:
    """Whether ``path`` has a table extension."""
    try:
        table_format(path)
    except ConfigError:
        return False
    return True


def _check_file(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        if p.is_dir():
            raise ConfigError(f"{str(path)!r} is a folder, not a table file; {nearby(p / 'x')}.")
        raise ConfigError(f"table {str(path)!r} does not exist; {nearby(p)}.")
    table_format(p)
    return p


def _read(path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
    fmt = table_format(path)
    try:
        if fmt in ("csv", "tsv"):
            # Every cell as text, nothing turned into NaN: "NA" is a valid text; "" is empty.
            return pd.read_csv(
                path,
                sep="\t" if fmt == "tsv" else ",",
                usecols=list(columns) if columns is not None else None,
                dtype=str,
                keep_default_na=False,
                compression="infer",
            )
        if fmt == "jsonl":
            df = pd.read_json(path, lines=True, dtype=False, compression="infer")
            return df[list(columns)] if columns is not None else df
        return pd.read_parquet(path, columns=list(columns) if columns is not None else None)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - any parser failure is a bad table file
        raise ConfigError(
            f"cannot read table {str(path)!r} as {fmt}: {type(e).__name__}: {e}"
        ) from None


def table_columns(path: str | Path) -> list[str]:
    """The column names of a table file (reads only the header where the format allows)."""
    p = _check_file(path)
    fmt = table_format(p)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(p).names)
        except Exception as e:  # noqa: BLE001
            raise ConfigError(f"cannot read table {str(p)!r} as parquet: {e}") from None
    if fmt in ("csv", "tsv"):
        try:
            return list(
                pd.read_csv(
                    p, sep="\t" if fmt == "tsv" else ",", nrows=0, dtype=str, compression="infer"
                ).columns
            )
        except Exception as e:  # noqa: BLE001
            raise ConfigError(
                f"cannot read table {str(p)!r} as {fmt}: {type(e).__name__}: {e}"
            ) from None
    return [str(c) for c in _read(p, None).columns]


def _require_columns(path: Path, available: list[str], wanted: dict[str, str | None]) -> None:
    for role, col in wanted.items():
        if col is not None and col not in available:
            close = difflib.get_close_matches(col, available, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ConfigError(
                f"{role}={col!r}: no such column in {str(path)!r}; available columns: "
                f"{available}.{hint}"
            )


def _is_missing(v: Any) -> bool:
    return (
        v is None
        or (isinstance(v, float) and math.isnan(v))
        or (isinstance(v, str) and not v.strip())
    )


def _cell_to_str(v: Any) -> str:
    if _is_missing(v):
        return ""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _row_ids(n: int) -> list[str]:
    width = max(6, len(str(max(n - 1, 0))))
    return [f"row-{k:0{width}d}" for k in range(n)]


def _ids_from_column(path: Path, column: str, values: Sequence[Any]) -> list[str]:
    ids = [_cell_to_str(v) for v in values]
    empty = [k for k, v in enumerate(ids) if not v]
    if empty:
        raise ConfigError(
            f"id column {column!r} of {str(path)!r} is empty in {len(empty)} row(s) "
            f"(first rows: {empty[:10]}); fill them in or drop id_column to use row numbers."
        )
    dup = [k for k, c in Counter(ids).items() if c > 1]
    if dup:
        raise ConfigError(
            f"id column {column!r} of {str(path)!r} has {len(dup)} duplicated id(s): "
            f"{sorted(dup)[:10]}; ids must be unique. Fix them or drop id_column to use row numbers."
        )
    return ids


class _TableSource(BaseSource):
    """Reading the table and its id and label columns (shared by image and text tables)."""

    def _read_table(
        self,
        path: str | Path,
        main_role: str,
        main_column: str,
        id_column: str | None,
        label_column: str | None,
        classes: Sequence[str] | None,
    ) -> list[Any]:
        p = _check_file(path)
        self.table_path = str(p.resolve())
        self.format = table_format(p)
        self.id_column = id_column
        self.label_column = label_column
        wanted = {main_role: main_column, "id_column": id_column, "label_column": label_column}
        cols = list(dict.fromkeys(c for c in wanted.values() if c is not None))
        if self.format == "jsonl":
            # JSON lines have no header: read once, then check the columns.
            df = _read(p, None)
            _require_columns(p, [str(c) for c in df.columns], wanted)
            df = df[cols]
        else:
            _require_columns(p, table_columns(p), wanted)
            df = _read(p, cols)
        n = len(df)
        self.ids = (
            _ids_from_column(p, id_column, df[id_column].tolist()) if id_column else _row_ids(n)
        )
        if label_column is not None:
            self.labels, self.classes = encode_labels(
                df[label_column].tolist(),
                classes,
                what=f"label column {label_column!r} of {self.table_path!r}",
                ids=self.ids,
            )
        else:
            self.labels = np.full(n, -1, dtype=np.int64)
            self.classes = [str(c) for c in classes] if classes is not None else []
        return df[main_column].tolist()

    def _describe_extra(self) -> dict[str, Any]:
        return {
            "table": self.table_path,
            "format": self.format,
            "id_column": self.id_column,
            "label_column": self.label_column,
        }


class ImageTableSource(_TableSource, FileImageSource):
    """A table whose rows name image files.

    Parameters
    ----------
    path
        A ``.csv``/``.tsv``/``.jsonl`` (optionally ``.gz``/``.bz2``/``.xz``/``.zst``/``.zip``)
        or ``.parquet`` file.
    path_column
        The column of image paths: relative to ``root``, or to the table's folder when ``root``
        is not given; absolute paths are used as they are.
    label_column
        Optional column of labels (strings or integers; empty = no label, ``-1``). Class names
        are the sorted distinct labels (numerically when all are integers) unless ``classes``
        fixes them.
    id_column
        Optional column of unique ids; by default ids are row numbers (``"row-000123"``).
    root
        The folder the relative paths start from.
    classes
        Class names in a fixed order.

    Notes
    -----
    The table is read once, at construction; only the few needed columns are kept. A missing
    image file is an :class:`~embedpipe.errors.ItemError` at ``load``/``content_hash`` time
    (so ``on_error='skip'`` can skip it), naming the closest files in its folder.

    Examples
    --------
    >>> src = ImageTableSource("train.csv", label_column="label")  # doctest: +SKIP
    """

    modality: Modality = "image"

    def __init__(
        self,
        path: str | Path,
        path_column: str = "path",
        label_column: str | None = None,
        id_column: str | None = None,
        root: str | Path | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        values = self._read_table(
            path, "path_column", path_column, id_column, label_column, classes
        )
        self.path_column = path_column
        self.paths: list[str] = [_cell_to_str(v) for v in values]
        if root is not None:
            r = Path(root).expanduser()
            if not r.is_dir():
                raise ConfigError(f"root {str(root)!r} is not a folder; {nearby(r)}.")
            self.root = str(r.resolve())
        else:
            self.root = os.path.dirname(self.table_path)
        self._hashes = [None] * len(self.paths)

    def path(self, i: int) -> str:
        """Absolute path of item ``i``'s image file."""
        i = self._check_index(i)
        rel = self.paths[i]
        if not rel:
            raise ItemError(
                self.ids[i], f"empty path in column {self.path_column!r} of {self.table_path!r}"
            )
        return os.path.join(self.root, os.path.expanduser(rel))

    def _describe_extra(self) -> dict[str, Any]:
        return {**super()._describe_extra(), "path_column": self.path_column, "root": self.root}


class TextTableSource(_TableSource):
    """A table of texts.

    Parameters
    ----------
    path
        A ``.csv``/``.tsv``/``.jsonl`` (optionally compressed) or ``.parquet`` file.
    text_column
        The column of texts. An empty or whitespace-only text is an
        :class:`~embedpipe.errors.ItemError` when loaded.
    label_column, id_column, classes
        As for :class:`ImageTableSource`.

    Notes
    -----
    ``content_hash(i)`` is the blake2b-128 of the text's UTF-8 bytes. CSV cells are read as
    text verbatim (``"NA"`` stays ``"NA"``).

    Examples
    --------
    >>> src = TextTableSource("reviews.jsonl", label_column="sentiment")  # doctest: +SKIP
    >>> src.load(0)  # doctest: +SKIP
    'A three-hour cinema master class.'
    """

    modality: Modality = "text"

    def __init__(
        self,
        path: str | Path,
        text_column: str = "text",
        label_column: str | None = None,
        id_column: str | None = None,
        classes: Sequence[str] | None = None,
    ) -> None:
        values = self._read_table(
            path, "text_column", text_column, id_column, label_column, classes
        )
        self.text_column = text_column
        self.texts: list[str] = [_cell_to_str(v) if _is_missing(v) else str(v) for v in values]

    def load(self, i: int) -> str:
        """The text of item ``i``; empty or whitespace-only text raises ItemError."""
        i = self._check_index(i)
        text = self.texts[i]
        if not text.strip():
            raise ItemError(
                self.ids[i],
                f"empty text (column {self.text_column!r} of {self.table_path!r}, row {i})",
            )
        return text

    def content_hash(self, i: int) -> bytes:
        """blake2b-128 of the text's UTF-8 bytes."""
        return text_content_hash(self.texts[self._check_index(i)])

    def _describe_extra(self) -> dict[str, Any]:
        return {**super()._describe_extra(), "text_column": self.text_column}
