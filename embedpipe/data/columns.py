"""Sources over named columns — a table file or a Hugging Face dataset — read one way.

A :class:`ColumnReader` says what columns there are and gives their values; a
:class:`ColumnSource` reads its ids, labels and kept columns through one, and
:class:`TextColumnSource` / :class:`CellImageSource` add the texts or the image cells. The
table sources (:mod:`.tables`) and the Hugging Face sources (:mod:`.hf`) are these classes with
their own reader, so a column check, an id rule or a label rule is written once for both.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import Arg, ConfigError, ItemError, NotFoundError
from ..registry import did_you_mean
from .base import BaseSource, Modality, text_content_hash
from .forms import split_keep_columns
from .image_folder import FileImageSource
from .images import ImageCell
from .labels import encode_labels, int_labels


def unknown_column(role: str, column: str, where: str, available: Sequence[str]) -> NotFoundError:
    """The error for a column that is not there: the available ones and a close match.

    Examples
    --------
    >>> print(unknown_column("label_column", "lable", "'t.csv'", ["text", "label"]))
    label_column='lable': no such column in 't.csv'; available columns: ['text', 'label']; did you mean 'label'?
    """
    known = [str(c) for c in available]
    return NotFoundError(
        Arg(role, column),
        f": no such column in {where}; available columns: {known}{did_you_mean(column, known)}",
    )


def check_columns(where: str, available: Sequence[str], wanted: dict[str, Any]) -> None:
    """Raise :func:`unknown_column` for the first wanted column that is not available."""
    have = [str(c) for c in available]
    for role, col in wanted.items():
        cols = col if isinstance(col, list) else [col]
        for c in cols:
            if c is not None and c not in have:
                raise unknown_column(role, c, where, have)


def is_missing(v: Any) -> bool:
    """None, NaN or a blank string."""
    return (
        v is None
        or (isinstance(v, float) and math.isnan(v))
        or (isinstance(v, str) and not v.strip())
    )


def cell_to_str(v: Any) -> str:
    """A cell as text: missing → ``""``, integral floats without ``.0``.

    Examples
    --------
    >>> cell_to_str(3.0), cell_to_str(float("nan")), cell_to_str("x")
    ('3', '', 'x')
    """
    if is_missing(v):
        return ""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def numbered_ids(n: int, prefix: str) -> list[str]:
    """``{prefix}000000``, ``{prefix}000001``... (wider past a million rows).

    Examples
    --------
    >>> numbered_ids(2, "row-")
    ['row-000000', 'row-000001']
    """
    width = max(6, len(str(max(n - 1, 0))))
    return [f"{prefix}{k:0{width}d}" for k in range(n)]


def ids_from_column(where: str, column: str, values: Sequence[Any]) -> list[str]:
    """Unique, non-empty ids from a column, or a ConfigError naming the bad rows."""
    ids = [cell_to_str(v) for v in values]
    empty = [k for k, v in enumerate(ids) if not v]
    if empty:
        raise ConfigError(
            f"id column {column!r} of {where} is empty in {len(empty)} row(s) "
            f"(first rows: {empty[:10]}); fill them in or drop id_column to use row numbers."
        )
    dup = [k for k, c in Counter(ids).items() if c > 1]
    if dup:
        raise ConfigError(
            f"id column {column!r} of {where} has {len(dup)} duplicated id(s): "
            f"{sorted(dup)[:10]}; ids must be unique. Fix them or drop id_column to use row numbers."
        )
    return ids


class ColumnReader:
    """Named columns of equal length, as a source reads them.

    Subclasses implement :meth:`names`, :meth:`select` and :meth:`values`; :meth:`class_names`
    and :attr:`bad_rows` default to none.
    """

    #: How messages name the columns' home (``"'/data/t.csv'"``, ``"hf:imdb"``).
    where: str = "the table"
    #: Rows that could not be read (``{row: reason}``); loading one is an ItemError.
    bad_rows: dict[int, str] = {}

    def names(self) -> list[str]:
        """The column names."""
        raise NotImplementedError

    def select(self, names: Sequence[str]) -> int:
        """Read ``names`` (checked to exist); return the number of rows."""
        raise NotImplementedError

    def values(self, name: str) -> list[Any]:
        """The values of a selected column, one per row."""
        raise NotImplementedError

    def class_names(self, name: str) -> list[str] | None:
        """The class names when column ``name`` holds class numbers (a ``ClassLabel``)."""
        return None

    def row_id(self, row: int, reason: str) -> str:
        """The id of a bad row when the id column could not be read from it."""
        return f"row {row}"

    def label(self, label_column: str | None | bool) -> str | None:
        """The label column to read for ``label_column`` as given (``False``: none)."""
        return label_column if isinstance(label_column, str) else None

    def default_ids(self, n: int) -> list[str]:
        """The ids of ``n`` rows when no id column is given (``row-000000``...)."""
        return numbered_ids(n, "row-")


class ColumnSource(BaseSource):
    """Ids, labels and kept columns read through a :class:`ColumnReader`.

    Subclasses call :meth:`_read_columns` from their ``__init__``; it returns the main
    column's values (texts, paths or image cells).
    """

    where: str
    keep: list[str]
    bad_rows: dict[int, str]
    id_column: str | None
    label_column: str | None
    _kept: dict[str, list[str]]

    def _read_columns(
        self,
        reader: ColumnReader,
        main_role: str,
        main_column: str,
        id_column: str | None,
        label_column: str | None | bool,
        classes: Sequence[str] | None,
        keep_columns: Sequence[str] | str | None,
    ) -> list[Any]:
        where = self.where = reader.where
        label_column = reader.label(label_column)
        self.id_column = id_column
        self.label_column = label_column
        self.keep = split_keep_columns(keep_columns) or []
        wanted: dict[str, Any] = {
            main_role: main_column,
            "id_column": id_column,
            "label_column": label_column,
            "keep_columns": self.keep,
        }
        check_columns(where, reader.names(), wanted)
        named = [main_column, id_column, label_column, *self.keep]
        n = reader.select(list(dict.fromkeys(c for c in named if c is not None)))
        self.bad_rows = dict(reader.bad_rows)
        if id_column is not None:
            raw_ids = reader.values(id_column)
            for k, why in self.bad_rows.items():
                raw_ids[k] = reader.row_id(k, why)
            self.ids = ids_from_column(where, id_column, raw_ids)
        else:
            self.ids = reader.default_ids(n)
        self._read_labels(reader, label_column, classes)
        self._kept = {c: [cell_to_str(v) for v in reader.values(c)] for c in self.keep}
        return reader.values(main_column)

    def _read_labels(
        self, reader: ColumnReader, column: str | None, classes: Sequence[str] | None
    ) -> None:
        if column is None:
            self.labels = np.full(len(self.ids), -1, dtype=np.int64)
            self.classes = [str(c) for c in classes] if classes is not None else []
            return
        what = f"label column {column!r} of {self.where}"
        values = reader.values(column)
        names = reader.class_names(column)
        if names is not None and classes is None:
            self.classes = list(names)
            self.labels = int_labels(
                np.asarray([-1 if v is None else v for v in values], dtype=np.int64),
                self.classes,
                what=what,
            )
            return
        if names is not None:  # class numbers, re-ordered by the classes given
            values = [None if v is None or v < 0 else names[v] for v in values]
        self.labels, self.classes = encode_labels(values, classes, what=what, ids=self.ids)

    def _check_row(self, i: int) -> None:
        why = self.bad_rows.get(i)
        if why is not None:
            raise ItemError(self.ids[i], why)

    def kept_columns(self) -> dict[str, Sequence[str]]:
        """The ``keep_columns`` of each row, as text (``{name: values}``)."""
        return dict(self._kept)

    def _home(self) -> dict[str, Any]:
        """Where the columns come from, for :meth:`describe`."""
        return {}

    def _describe_extra(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            **self._home(),
            "id_column": self.id_column,
            "label_column": self.label_column,
        }
        if self.keep:
            d["keep_columns"] = list(self.keep)
        return d


class TextColumnSource(ColumnSource):
    """The texts of one column; an empty or whitespace-only text is an ItemError."""

    modality: Modality = "text"
    text_column: str
    texts: list[str]

    def _set_texts(self, column: str, values: list[Any]) -> None:
        self.text_column = column
        self.texts = [cell_to_str(v) if is_missing(v) else str(v) for v in values]

    def _text_place(self, i: int) -> str:
        return f"column {self.text_column!r} of {self.where}"

    def load(self, i: int) -> str:
        """The text of item ``i``; empty or whitespace-only text raises ItemError."""
        i = self._check_index(i)
        self._check_row(i)
        text = self.texts[i]
        if not text.strip():
            raise ItemError(self.ids[i], f"empty text ({self._text_place(i)})")
        return text

    def reference(self, i: int) -> str:
        """The text itself."""
        return self.texts[self._check_index(i)]

    def content_hash(self, i: int) -> bytes:
        """blake2b-128 of the text's UTF-8 bytes."""
        i = self._check_index(i)
        self._check_row(i)
        return text_content_hash(self.texts[i])

    def _describe_extra(self) -> dict[str, Any]:
        return {**super()._describe_extra(), "text_column": self.text_column}


class CellImageSource(ColumnSource, FileImageSource):
    """Images held in one column's cells: encoded bytes, Hugging Face's ``{"bytes", "path"}``
    structs, or paths (relative to ``root``). Subclasses implement :meth:`_cell`."""

    modality: Modality = "image"
    #: What holds the cells, for messages (``"table"``, ``"dataset"``).
    holder = "table"
    #: What a hit names when its cell gives no path (``"{home}#{id}"``).
    home: str

    def _cell(self, i: int) -> ImageCell:  # pragma: no cover - abstract
        raise NotImplementedError

    def path(self, i: int) -> str:
        """The file of item ``i`` when its cell names one and holds no bytes."""
        i = self._check_index(i)
        self._check_row(i)
        cell = self._cell(i)
        if cell.path is None:
            raise TypeError(
                f"item {self.ids[i]!r} is held as bytes in the {self.holder}, not a file"
            )
        return cell.path

    def load(self, i: int) -> Any:
        """Decode item ``i`` into a PIL RGB image; a bad cell raises ItemError."""
        i = self._check_index(i)
        self._check_row(i)
        return self._cell(i).load()

    def _hash_file(self, i: int) -> bytes:
        return self._cell(i).content_hash()

    def reference(self, i: int) -> str:
        """The path the image is (or came from), else ``{home}#{id}``."""
        i = self._check_index(i)
        try:
            return self._cell(i).reference() or f"{self.home}#{self.ids[i]}"
        except ItemError:
            return f"{self.home}#{self.ids[i]}"
