"""The source-form registry: open_source dispatches through registered forms only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from embedpipe.data import (
    SOURCE_FORMS,
    ArraySource,
    ImageFolderSource,
    SourceForm,
    TableForm,
    TextTableSource,
    open_source,
    register_source_form,
    source_forms,
)
from embedpipe.data.tables import table_form
from embedpipe.errors import ConfigError, NotFoundError

from .conftest import solid, write_png


def test_every_shipped_form_is_registered() -> None:
    names = {f["name"] for f in source_forms()}
    assert {
        "builtin",
        "torchvision",
        "hf",
        "hf-folder",
        "image-folder",
        "csv",
        "tsv",
        "jsonl",
        "parquet",
        "arrow",
    } <= names
    schemes = {f["scheme"] for f in source_forms() if f["scheme"]}
    assert {"builtin", "torchvision", "hf"} <= schemes


def test_a_new_scheme_form_is_one_registered_object(tmp_path: Path) -> None:
    opened: list[tuple[str, dict[str, Any]]] = []

    @register_source_form("words-test")
    class Words(SourceForm):
        scheme = "words"
        help = "'words:A+B' (one text per word)"

        def open(self, target: str | Path, options: dict[str, Any]) -> ArraySource:
            opened.append((str(target), options))
            return ArraySource(str(target).split("+"), **options)

    try:
        src = open_source("words:good+bad?name=w", ids=["a", "b"])
        assert src.load(1) == "bad" and src.ids == ["a", "b"]
        assert opened == [("good+bad", {"name": "w", "ids": ["a", "b"]})]
        assert open_source({"words": "x+y+z"}).load(2) == "z"  # the dict form too
        with pytest.raises(ConfigError, match=r"'words:A\+B'"):  # listed in the forms' help
            open_source(tmp_path / "missing")
    finally:
        SOURCE_FORMS.unregister("words-test")
    with pytest.raises(NotFoundError, match="no source form 'words:'"):
        open_source("words:a")


def test_path_forms_follow_priority(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    write_png(root / "a" / "x.png", solid((1, 2, 3)))
    assert isinstance(open_source(root), ImageFolderSource)

    @register_source_form("marked-folder-test")
    class Marked(SourceForm):
        priority = 50
        help = "a folder holding MARK"

        def matches(self, path: Path) -> bool:
            return (path / "MARK").is_file()

        def open(self, target: str | Path, options: dict[str, Any]) -> ArraySource:
            return ArraySource(["marked"])

    try:
        assert isinstance(open_source(root), ImageFolderSource)  # no MARK: the image folder
        (root / "MARK").write_text("")
        assert open_source(root).load(0) == "marked"  # higher priority wins
    finally:
        SOURCE_FORMS.unregister("marked-folder-test")


def test_a_new_table_format_is_one_registered_form(tmp_path: Path) -> None:
    @register_source_form("psv-test")
    class Psv(TableForm):
        suffixes = (".psv",)

        def read(self, path: Path, columns: Any) -> pd.DataFrame:
            df = pd.read_csv(path, sep="|", dtype=str, keep_default_na=False)
            return df[list(columns)] if columns is not None else df

    try:
        path = tmp_path / "reviews.psv.gz"
        pd.DataFrame({"text": ["fine film", "dull"], "y": ["p", "n"]}).to_csv(
            path, sep="|", index=False
        )
        assert table_form(path).name == "psv-test"
        src = open_source(path, label_column="y")
        assert isinstance(src, TextTableSource) and src.format == "psv-test"
        assert src.load(0) == "fine film" and src.classes == ["n", "p"]
    finally:
        SOURCE_FORMS.unregister("psv-test")
    with pytest.raises(ConfigError, match="unknown table format"):
        table_form(tmp_path / "reviews.psv")


def test_unknown_names_suggest_close_ones(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no source form 'buitin:'; did you mean 'builtin'"):
        open_source("buitin:digits")
    with pytest.raises(
        NotFoundError, match="unknown builtin dataset 'digit'; did you mean 'digits'"
    ):
        open_source("builtin:digit")
    with pytest.raises(
        NotFoundError, match="unknown builtin dataset 'mnsit'; did you mean 'mnist'"
    ):
        open_source({"builtin": "mnsit"})
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": ["a"], "label": ["x"]}).to_csv(path, index=False)
    with pytest.raises(NotFoundError, match="label_column='lable'.*did you mean 'label'"):
        open_source(path, label_column="lable")
    with pytest.raises(NotFoundError, match="keep_columns='titel'.*available columns"):
        open_source(path, keep_columns="text,titel")
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['limt'\].*did you mean 'limit'"):
        open_source("builtin:digits?limt=5")
    # A NotFoundError is a LookupError, not a bare KeyError.
    assert issubclass(NotFoundError, LookupError) and not issubclass(NotFoundError, KeyError)


def test_a_plugin_form_loads_through_its_entry_point(tmp_path: Path, monkeypatch) -> None:
    """A distribution with an ``embedpipe.sources`` entry point naming a SourceForm class."""
    (tmp_path / "shout_form.py").write_text(
        "from embedpipe.data import ArraySource, SourceForm\n"
        "class ShoutForm(SourceForm):\n"
        "    scheme = 'shout'\n"
        "    help = \"'shout:TEXT'\"\n"
        "    def open(self, target, options):\n"
        "        return ArraySource([str(target).upper()], **options)\n"
    )
    dist = tmp_path / "shout_form-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-form\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[embedpipe.sources]\nshout = shout_form:ShoutForm\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        SOURCE_FORMS.load_plugins(reload=True)
        assert open_source("shout:hello").load(0) == "HELLO"
        assert "shout" in {f["name"] for f in source_forms()}
    finally:
        SOURCE_FORMS.unregister("shout")
