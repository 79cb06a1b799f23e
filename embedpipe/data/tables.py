"""Tables of texts, image paths or image bytes, with optional ids, labels and kept columns.

Each table format (CSV, TSV, JSONL, Parquet, Arrow) is a registered :class:`TableForm`: the
file suffixes it claims and its ``read`` / ``columns`` hooks. A new format is one more
registered form; nothing here lists the formats.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import Arg, ConfigError, Fix, ItemError, NotFoundError
from ..registry import did_you_mean
from ._paths import nearby
from .base import BaseSource, DataSource, Modality, text_content_hash
from .forms import (
    SourceForm,
    all_forms,
    call_with_options,
    register_source_form,
    split_keep_columns,
)
from .image_folder import FileImageSource
from .images import ImageCell
from .labels import encode_labels

COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst", ".zip")


class TableForm(SourceForm):
    """A table file format: the suffixes it claims and how to read it.

    Subclasses set :attr:`suffixes` and implement :meth:`read` (and :meth:`columns` when the
    header can be read without the rows).
    """

    suffixes: tuple[str, ...] = ()
    #: Whether a compression suffix (``.gz``...) may follow (CSV/TSV/JSONL: yes).
    compressible = True
    priority = 10

    @property
    def help(self) -> str:  # type: ignore[override]
        """One line for every table format at once (the forms list shows it once)."""
        return (
            f"a table file ({', '.join(table_suffixes())}; CSV/TSV/JSONL may be compressed) of "
            "texts (text_column), image paths (path_column) or image bytes (image_column)"
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "suffixes": list(self.suffixes)}

    def claims(self, path: Path) -> bool:
        """Whether the file name ends in one of :attr:`suffixes` (plus compression)."""
        suffixes = [s.lower() for s in path.suffixes]
        if suffixes and suffixes[-1] in COMPRESSIONS and self.compressible:
            suffixes = suffixes[:-1]
        return bool(suffixes) and suffixes[-1] in self.suffixes

    def matches(self, path: Path) -> bool:
        return path.is_file() and self.claims(path)

    def read(self, path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
        """The table's rows (only ``columns`` when given)."""
        raise NotImplementedError

    def columns(self, path: Path) -> list[str]:
        """The column names (default: read the table)."""
        return [str(c) for c in self.read(path, None).columns]

    def open(self, target: str | Path, options: dict[str, Any]) -> DataSource:
        return open_table(Path(target), options)


def table_forms() -> list[TableForm]:
    """The registered table formats (plugins included)."""
    return [f for f in all_forms() if isinstance(f, TableForm)]


def table_suffixes() -> list[str]:
    """Every suffix a registered table format claims.

    Examples
    --------
    >>> ".csv" in table_suffixes() and ".parquet" in table_suffixes()
    True
    """
    return [s for f in table_forms() for s in f.suffixes]


def table_form(path: str | Path) -> TableForm:
    """The table format claiming ``path`` by its name.

    Raises
    ------
    ConfigError
        No registered format claims the extension.

    Examples
    --------
    >>> table_form("reviews.csv.gz").name, table_form("x.parquet").name
    ('csv', 'parquet')
    """
    p = Path(path)
    for form in table_forms():
        if form.claims(p):
            return form
    if p.suffix.lower() in COMPRESSIONS and any(
        Path(p.stem).suffix.lower() in f.suffixes for f in table_forms()
    ):
        raise ConfigError(
            f"{str(path)!r}: {Path(p.stem).suffix} compresses internally; store it uncompressed."
        )
    raise ConfigError(
        f"{str(path)!r}: unknown table format; use one of {', '.join(table_suffixes())} "
        f"(CSV/TSV/JSONL may be compressed: {', '.join(COMPRESSIONS)})."
    )


def _read_error(path: Path, fmt: str, e: Exception) -> ConfigError:
    return ConfigError(f"cannot read table {str(path)!r} as {fmt}: {type(e).__name__}: {e}")


@register_source_form("csv")
class CsvForm(TableForm):
    """Comma-separated values; every cell read as text verbatim (``"NA"`` stays ``"NA"``)."""

    suffixes = (".csv",)
    sep = ","

    def read(self, path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
        try:
            return pd.read_csv(
                path,
                sep=self.sep,
                usecols=list(columns) if columns is not None else None,
                dtype=str,
                keep_default_na=False,
                compression="infer",
            )
        except Exception as e:  # noqa: BLE001 - any parser failure is a bad table file
            raise _read_error(path, self.name, e) from None

    def columns(self, path: Path) -> list[str]:
        try:
            head = pd.read_csv(path, sep=self.sep, nrows=0, dtype=str, compression="infer")
        except Exception as e:  # noqa: BLE001
            raise _read_error(path, self.name, e) from None
        return [str(c) for c in head.columns]


@register_source_form("tsv")
class TsvForm(CsvForm):
    """Tab-separated values."""

    suffixes = (".tsv",)
    sep = "\t"


@register_source_form("jsonl")
class JsonlForm(TableForm):
    """JSON lines (one object per line)."""

    suffixes = (".jsonl", ".ndjson")

    def read(self, path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
        """The lines as rows. A line that is not a JSON object becomes an empty row listed in
        ``df.attrs["bad_lines"]`` (``{row: reason}``): the table sources make it an item
        error naming the line, which ``on_error='skip'`` skips and records."""
        try:
            df = pd.read_json(path, lines=True, dtype=False, compression="infer")
        except ValueError:
            df = self._read_lines(path)
        except Exception as e:  # noqa: BLE001
            raise _read_error(path, self.name, e) from None
        out = df[list(columns)] if columns is not None else df
        out.attrs["bad_lines"] = dict(df.attrs.get("bad_lines", {}))
        return out

    def _read_lines(self, path: Path) -> pd.DataFrame:
        import json

        from pandas.io.common import get_handle

        records: list[dict[str, Any]] = []
        bad: dict[int, str] = {}
        try:
            with get_handle(path, "r", compression="infer", encoding="utf-8") as h:
                for lineno, line in enumerate(h.handle, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line.strip())
                    except ValueError as e:
                        reason = getattr(e, "msg", str(e))
                        col = getattr(e, "colno", None)
                        at = f" at column {col}" if col else ""
                        obj, why = None, f"is not valid JSON ({reason}{at})"
                    else:
                        why = "is not a JSON object" if not isinstance(obj, dict) else ""
                    if why:
                        bad[len(records)] = f"line {lineno} of {str(path)!r} {why}"
                        obj = {}
                    records.append(obj)
        except Exception as e:  # noqa: BLE001 - unreadable file (not its lines)
            raise _read_error(path, self.name, e) from None
        if len(bad) == len(records):
            first = next(iter(bad.values()), f"{str(path)!r} holds no JSON lines")
            raise ConfigError(f"cannot read table {str(path)!r} as jsonl: {first}.")
        df = pd.DataFrame.from_records(records)
        df.attrs["bad_lines"] = bad
        return df


@register_source_form("parquet")
class ParquetForm(TableForm):
    """Apache Parquet; an image column may hold encoded bytes (or HF's bytes/path struct)."""

    suffixes = (".parquet", ".pq")
    compressible = False

    def read(self, path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
        try:
            return pd.read_parquet(path, columns=list(columns) if columns is not None else None)
        except Exception as e:  # noqa: BLE001
            raise _read_error(path, self.name, e) from None

    def columns(self, path: Path) -> list[str]:
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(path).names)
        except Exception as e:  # noqa: BLE001
            raise _read_error(path, self.name, e) from None


@register_source_form("arrow")
class ArrowForm(TableForm):
    """Arrow IPC files (Feather v2) or streams (what ``datasets`` writes)."""

    suffixes = (".arrow", ".feather", ".ipc")
    compressible = False

    def _table(self, path: Path, columns: Sequence[str] | None) -> Any:
        import pyarrow as pa

        try:
            with pa.memory_map(str(path)) as f:
                try:
                    table = pa.ipc.open_file(f).read_all()
                except pa.ArrowInvalid:
                    f.seek(0)
                    table = pa.ipc.open_stream(f).read_all()
        except Exception as e:  # noqa: BLE001
            raise _read_error(path, self.name, e) from None
        return table.select(list(columns)) if columns is not None else table

    def read(self, path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
        return self._table(path, columns).to_pandas()

    def columns(self, path: Path) -> list[str]:
        return list(self._table(path, None).schema.names)


def _check_file(path: str | Path) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        if p.is_dir():
            raise ConfigError(f"{str(path)!r} is a folder, not a table file; {nearby(p / 'x')}.")
        raise ConfigError(f"table {str(path)!r} does not exist; {nearby(p)}.")
    table_form(p)
    return p


def table_columns(path: str | Path) -> list[str]:
    """The column names of a table file (reads only the header where the format allows)."""
    p = _check_file(path)
    return table_form(p).columns(p)


def unknown_column(
    role: str, column: str, where: str, available: Sequence[str], flag: str | None = None
) -> NotFoundError:
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
    """A cell as text: missing → ``""``, integral floats without ``.0``."""
    if is_missing(v):
        return ""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def row_ids(n: int, prefix: str = "row") -> list[str]:
    """``row-000000``, ``row-000001``... (wider past a million rows)."""
    width = max(6, len(str(max(n - 1, 0))))
    return [f"{prefix}-{k:0{width}d}" for k in range(n)]


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


class _TableSource(BaseSource):
    """Reading the table, its id, label and kept columns (shared by image and text tables)."""

    keep: list[str]
    _kept: dict[str, list[str]]

    def _read_table(
        self,
        path: str | Path,
        main_role: str,
        main_column: str,
        id_column: str | None,
        label_column: str | None,
        classes: Sequence[str] | None,
        keep_columns: Sequence[str] | str | None,
    ) -> list[Any]:
        p = _check_file(path)
        form = table_form(p)
        self.table_path = str(p.resolve())
        self.format = form.name
        self.id_column = id_column
        self.label_column = label_column
        self.keep = split_keep_columns(keep_columns) or []
        wanted: dict[str, Any] = {
            main_role: main_column,
            "id_column": id_column,
            "label_column": label_column,
            "keep_columns": self.keep,
        }
        where = repr(self.table_path)
        named = [main_column, id_column, label_column, *self.keep]
        cols = list(dict.fromkeys(c for c in named if c is not None))
        if isinstance(form, JsonlForm):
            # JSON lines have no header: read once, then check the columns.
            df = form.read(p, None)
            check_columns(where, [str(c) for c in df.columns], wanted)
            df = df[cols]
        else:
            check_columns(where, form.columns(p), wanted)
            df = form.read(p, cols)
        n = len(df)
        #: Rows read from malformed lines (JSONL): ``{row: reason}``; loading them is an
        #: ItemError naming the line.
        self.bad_rows: dict[int, str] = dict(df.attrs.get("bad_lines", {}))
        raw_ids = df[id_column].tolist() if id_column else []
        for k, why in self.bad_rows.items():
            if id_column:
                raw_ids[k] = f"{p.name}:{why.split()[1]}"  # "x.jsonl:17", for the line
        self.ids = ids_from_column(where, id_column, raw_ids) if id_column else row_ids(n)
        if label_column is not None:
            self.labels, self.classes = encode_labels(
                df[label_column].tolist(),
                classes,
                what=f"label column {label_column!r} of {where}",
                ids=self.ids,
            )
        else:
            self.labels = np.full(n, -1, dtype=np.int64)
            self.classes = [str(c) for c in classes] if classes is not None else []
        self._kept = {c: [cell_to_str(v) for v in df[c].tolist()] for c in self.keep}
        return df[main_column].tolist()

    def _check_row(self, i: int) -> None:
        why = self.bad_rows.get(i)
        if why is not None:
            raise ItemError(self.ids[i], why)

    def kept_columns(self) -> dict[str, Sequence[str]]:
        """The ``keep_columns`` of each row, as text (``{name: values}``)."""
        return dict(self._kept)

    def _describe_extra(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "table": self.table_path,
            "format": self.format,
            "id_column": self.id_column,
            "label_column": self.label_column,
        }
        if self.keep:
            d["keep_columns"] = list(self.keep)
        return d


class ImageTableSource(_TableSource, FileImageSource):
    """A table whose rows name image files, or hold encoded images.

    Parameters
    ----------
    path
        A ``.csv``/``.tsv``/``.jsonl`` (optionally ``.gz``/``.bz2``/``.xz``/``.zst``/``.zip``),
        ``.parquet`` or ``.arrow`` file.
    path_column
        The column of image paths: relative to ``root``, or to the table's folder when ``root``
        is not given; absolute paths are used as they are.
    image_column
        Instead of ``path_column``: a column of encoded image bytes (PNG, JPEG...), of Hugging
        Face's ``{"bytes": ..., "path": ...}`` structs, or of paths. A bytes cell hashes like a
        file holding those bytes, so the same image reaches the same store row.
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
    keep_columns
        Columns kept per row as text (``kept_columns()``, e.g. ``["title", "url"]``).

    Notes
    -----
    The table is read once, at construction; only the needed columns are kept (an image
    column is re-read by each worker process rather than pickled). A missing image file is an
    :class:`~embedpipe.errors.ItemError` at ``load``/``content_hash`` time (so
    ``on_error='skip'`` can skip it), naming the closest files in its folder.

    Examples
    --------
    >>> import pandas as pd
    >>> from PIL import Image
    >>> Image.new("RGB", (4, 4), (255, 0, 0)).save("red.png")
    >>> pd.DataFrame({"path": ["red.png"], "label": ["warm"]}).to_csv("train.csv", index=False)
    >>> src = ImageTableSource("train.csv", label_column="label")
    >>> src.classes, src.load(0).getpixel((0, 0)), src.reference(0).endswith("red.png")
    (['warm'], (255, 0, 0), True)
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
        image_column: str | None = None,
        keep_columns: Sequence[str] | str | None = None,
    ) -> None:
        self.image_column = image_column
        self._cells: list[Any] | None = None
        if image_column is not None:
            self._cells = self._read_table(
                path, "image_column", image_column, id_column, label_column, classes, keep_columns
            )
            self.path_column: str = image_column
            self.paths: list[str] = []
        else:
            values = self._read_table(
                path, "path_column", path_column, id_column, label_column, classes, keep_columns
            )
            self.path_column = path_column
            self.paths = [cell_to_str(v) for v in values]
        if root is not None:
            r = Path(root).expanduser()
            if not r.is_dir():
                raise ConfigError(f"root {str(root)!r} is not a folder; {nearby(r)}.")
            self.root = str(r.resolve())
        else:
            self.root = os.path.dirname(self.table_path)
        self._hashes = [None] * len(self.ids)

    # ---- image cells (image_column) -------------------------------------------------------
    def _cell(self, i: int) -> ImageCell:
        if self._cells is None:
            p = Path(self.table_path)
            self._cells = table_form(p).read(p, [self.path_column])[self.path_column].tolist()
        return ImageCell(self._cells[i], self.root, self.ids[i])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cells"] = None  # workers re-read the image column instead of receiving it
        return state

    def path(self, i: int) -> str:
        """Absolute path of item ``i``'s image file."""
        i = self._check_index(i)
        self._check_row(i)
        if self.image_column is not None:
            cell = self._cell(i)
            if cell.path is None:
                raise TypeError(f"item {self.ids[i]!r} is held as bytes in the table, not a file")
            return cell.path
        rel = self.paths[i]
        if not rel:
            raise ItemError(
                self.ids[i], f"empty path in column {self.path_column!r} of {self.table_path!r}"
            )
        return os.path.join(self.root, os.path.expanduser(rel))

    def load(self, i: int) -> Any:
        """Decode item ``i`` into a PIL RGB image; a bad file or cell raises ItemError."""
        if self.image_column is None:
            return super().load(i)
        i = self._check_index(i)
        self._check_row(i)
        return self._cell(i).load()

    def _hash_file(self, i: int) -> bytes:
        if self.image_column is None:
            return super()._hash_file(i)
        return self._cell(i).content_hash()

    def reference(self, i: int) -> str:
        """The image file's path, or the path an image-bytes cell names, else the row id."""
        i = self._check_index(i)
        if self.image_column is not None:
            try:
                return self._cell(i).reference() or f"{self.table_path}#{self.ids[i]}"
            except ItemError:
                return f"{self.table_path}#{self.ids[i]}"
        return self.path(i) if self.paths[i] else str(self.ids[i])

    def _describe_extra(self) -> dict[str, Any]:
        role = "image_column" if self.image_column is not None else "path_column"
        return {**super()._describe_extra(), role: self.path_column, "root": self.root}


class TextTableSource(_TableSource):
    """A table of texts.

    Parameters
    ----------
    path
        A ``.csv``/``.tsv``/``.jsonl`` (optionally compressed), ``.parquet`` or ``.arrow`` file.
    text_column
        The column of texts. An empty or whitespace-only text is an
        :class:`~embedpipe.errors.ItemError` when loaded.
    label_column, id_column, classes, keep_columns
        As for :class:`ImageTableSource`.

    Notes
    -----
    ``content_hash(i)`` is the blake2b-128 of the text's UTF-8 bytes. CSV cells are read as
    text verbatim (``"NA"`` stays ``"NA"``).

    Examples
    --------
    >>> import pandas as pd
    >>> pd.DataFrame({"text": ["A three-hour cinema master class."], "sentiment": ["fresh"],
    ...               "url": ["https://example.org/1"]}).to_json("reviews.jsonl", orient="records",
    ...                                                      lines=True)
    >>> src = TextTableSource("reviews.jsonl", label_column="sentiment", keep_columns=["url"])
    >>> src.load(0), src.classes, src.kept_columns()
    ('A three-hour cinema master class.', ['fresh'], {'url': ['https://example.org/1']})
    """

    modality: Modality = "text"

    def __init__(
        self,
        path: str | Path,
        text_column: str = "text",
        label_column: str | None = None,
        id_column: str | None = None,
        classes: Sequence[str] | None = None,
        keep_columns: Sequence[str] | str | None = None,
    ) -> None:
        values = self._read_table(
            path, "text_column", text_column, id_column, label_column, classes, keep_columns
        )
        self.text_column = text_column
        self.texts: list[str] = [cell_to_str(v) if is_missing(v) else str(v) for v in values]

    def load(self, i: int) -> str:
        """The text of item ``i``; empty or whitespace-only text raises ItemError."""
        i = self._check_index(i)
        self._check_row(i)
        text = self.texts[i]
        if not text.strip():
            raise ItemError(
                self.ids[i],
                f"empty text (column {self.text_column!r} of {self.table_path!r}, row {i})",
            )
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


def _guess_modality(path: Path, opts: dict[str, Any]) -> str:
    if "text_column" in opts:
        return "text"
    if "path_column" in opts or "image_column" in opts or "root" in opts:
        return "image"
    cols = table_columns(path)
    has_text, has_image = "text" in cols, ("path" in cols or "image" in cols)
    if has_text == has_image:
        image = "path" if "path" in cols else "image"
        why = (
            f"both a 'text' and a {image!r} column"
            if has_text
            else "neither a 'text' nor a 'path' column"
        )
        raise ConfigError(
            f"{str(path)!r} has {why} (columns: {cols})",
            Fix("; pass ", text_column=..., does=" for texts"),
            Fix(", ", path_column=..., does=" for image files"),
            Fix(" or ", image_column=..., does=" for image bytes"),
            ".",
        )
    if has_text:
        return "text"
    if "path" not in cols:
        opts["image_column"] = "image"
    return "image"


def open_table(path: Path, options: dict[str, Any]) -> DataSource:
    """A text or image table source from a table file (the table forms' ``open`` hook).

    The modality comes from ``modality=``, else from the column options given, else from the
    columns present (``text`` → texts; ``path`` → image files; ``image`` → image bytes).
    """
    opts = dict(options)
    modality = opts.pop("modality", None) or _guess_modality(path, opts)
    if modality == "text":
        return call_with_options(TextTableSource, f"text table {str(path)!r}", path, **opts)
    if modality == "image":
        return call_with_options(ImageTableSource, f"image table {str(path)!r}", path, **opts)
    raise ConfigError(f"modality={modality!r}; use 'text' or 'image'.")
