"""Tables of texts, image paths or image bytes, with optional ids, labels and kept columns.

Each table format (CSV, TSV, JSONL, Parquet, Arrow) is a registered :class:`TableForm`: the
file suffixes it claims and its ``read`` / ``columns`` hooks. A new format is one more
registered form; nothing here lists the formats.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError, Fix, ItemError
from ._paths import nearby
from .base import DataSource
from .columns import (
    CellImageSource,
    ColumnReader,
    ColumnSource,
    TextColumnSource,
    cell_to_str,
)
from .forms import SourceForm, all_forms, call_with_options, register_source_form
from .images import ImageCell

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


class TableColumns(ColumnReader):
    """The columns of a table file, read once: the header first (all of it for JSON lines,
    which have none), then only the selected columns."""

    def __init__(self, path: str | Path) -> None:
        self.path = _check_file(path)
        self.form = table_form(self.path)
        self.table_path = str(self.path.resolve())
        self.where = repr(self.table_path)
        self._df: pd.DataFrame | None = None

    def names(self) -> list[str]:
        if isinstance(self.form, JsonlForm):
            self._df = self.form.read(self.path, None)
            return [str(c) for c in self._df.columns]
        return self.form.columns(self.path)

    def select(self, names: Sequence[str]) -> int:
        df = self.form.read(self.path, names) if self._df is None else self._df
        self.bad_rows = dict(df.attrs.get("bad_lines", {}))
        self._df = df[list(names)]
        return len(self._df)

    def values(self, name: str) -> list[Any]:
        assert self._df is not None
        return self._df[name].tolist()  # type: ignore[no-any-return]

    def row_id(self, row: int, reason: str) -> str:
        return f"{self.path.name}:{reason.split()[1]}"  # "x.jsonl:17", for the line


class _TableSource(ColumnSource):
    """A table file's columns (shared by image and text tables); ids ``row-000000``..."""

    def _open_table(self, path: str | Path) -> TableColumns:
        reader = TableColumns(path)
        self.table_path = self.home = reader.table_path
        self.format = reader.form.name
        return reader

    def _home(self) -> dict[str, Any]:
        return {"table": self.table_path, "format": self.format}


class ImageTableSource(_TableSource, CellImageSource):
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
        common = (id_column, label_column, classes, keep_columns)
        if image_column is not None:
            self._cells = self._read_columns(
                self._open_table(path), "image_column", image_column, *common
            )
            self.path_column: str = image_column
            self.paths: list[str] = []
        else:
            values = self._read_columns(self._open_table(path), "path_column", path_column, *common)
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

    # ---- image cells (image_column), or paths (path_column) ------------------------------
    def _cell(self, i: int) -> ImageCell:
        if self.image_column is None:
            rel = self.paths[i]
            if not rel:
                raise ItemError(
                    self.ids[i], f"empty path in column {self.path_column!r} of {self.table_path!r}"
                )
            return ImageCell(rel, self.root, self.ids[i])
        if self._cells is None:
            p = Path(self.table_path)
            self._cells = table_form(p).read(p, [self.path_column])[self.path_column].tolist()
        return ImageCell(self._cells[i], self.root, self.ids[i])

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_cells"] = None  # workers re-read the image column instead of receiving it
        return state

    def reference(self, i: int) -> str:
        """The image file's path, or the path an image-bytes cell names, else the row id."""
        if self.image_column is None and not self.paths[self._check_index(i)]:
            return str(self.ids[i])
        return super().reference(i)

    def _describe_extra(self) -> dict[str, Any]:
        role = "image_column" if self.image_column is not None else "path_column"
        return {**super()._describe_extra(), role: self.path_column, "root": self.root}


class TextTableSource(_TableSource, TextColumnSource):
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

    def __init__(
        self,
        path: str | Path,
        text_column: str = "text",
        label_column: str | None = None,
        id_column: str | None = None,
        classes: Sequence[str] | None = None,
        keep_columns: Sequence[str] | str | None = None,
    ) -> None:
        reader = self._open_table(path)
        values = self._read_columns(
            reader, "text_column", text_column, id_column, label_column, classes, keep_columns
        )
        self._set_texts(text_column, values)

    def _text_place(self, i: int) -> str:
        return f"column {self.text_column!r} of {self.table_path!r}, row {i}"


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
