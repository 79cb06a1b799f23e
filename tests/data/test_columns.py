"""One column reader for tables and Hugging Face datasets: the same rows give the same ids,
labels, kept columns and errors whichever home they are read from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from embedpipe.data import HFTextSource, TextTableSource
from embedpipe.errors import ConfigError, ItemError, NotFoundError

datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

ROWS = {
    "key": ["a", "b", "c"],
    "text": ["good film", "   ", "dull"],
    "label": ["fresh", "rotten", "rotten"],
    "year": ["2020", "2021", "2019"],
}


def _table(tmp_path: Path, rows: dict[str, list[Any]], **options: Any) -> TextTableSource:
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    return TextTableSource(tmp_path / "t.csv", **options)


def _dataset(tmp_path: Path, rows: dict[str, list[Any]], **options: Any) -> HFTextSource:
    return HFTextSource(datasets.Dataset.from_dict(rows), name="demo", **options)


HOMES: list[Callable[..., Any]] = [_table, _dataset]


@pytest.mark.parametrize("make", HOMES, ids=["table", "hf"])
def test_ids_labels_and_kept_columns(tmp_path, make):
    src = make(tmp_path, ROWS, id_column="key", label_column="label", keep_columns="year")
    assert list(src.ids) == ["a", "b", "c"]
    assert src.classes == ["fresh", "rotten"] and src.labels.tolist() == [0, 1, 1]
    assert src.kept_columns() == {"year": ["2020", "2021", "2019"]}
    assert src.load(0) == "good film"
    with pytest.raises(ItemError, match=r"empty text \(column 'text' of "):
        src.load(1)
    d = src.describe()
    assert (d["id_column"], d["label_column"], d["keep_columns"]) == ("key", "label", ["year"])


@pytest.mark.parametrize("make", HOMES, ids=["table", "hf"])
def test_the_same_errors(tmp_path, make):
    with pytest.raises(NotFoundError, match=r"label_column='lable'.*did you mean 'label'\?"):
        make(tmp_path, ROWS, label_column="lable")
    with pytest.raises(NotFoundError, match=r"keep_columns='yaer'"):
        make(tmp_path, ROWS, keep_columns=["yaer"])
    twice = {**ROWS, "key": ["a", "a", "c"]}
    with pytest.raises(ConfigError, match=r"id column 'key' .* 1 duplicated id\(s\): \['a'\]"):
        make(tmp_path, twice, id_column="key")


def test_default_ids_follow_the_home(tmp_path):
    assert list(_table(tmp_path, ROWS).ids)[:1] == ["row-000000"]
    assert list(_dataset(tmp_path, ROWS, split="test").ids)[:1] == ["test/000000"]
