from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedpipe.data import (
    ArraySource,
    DataSource,
    ImageFolderSource,
    ImageTableSource,
    SubsetSource,
    TextTableSource,
    TorchvisionSource,
    load_builtin,
    open_source,
    subset,
)
from embedpipe.errors import ConfigError, NotFoundError

from .conftest import solid, write_png


def test_builtin_string_and_dict_forms() -> None:
    a = open_source("builtin:digits?limit=500")
    assert isinstance(a, DataSource) and len(a) == 500
    b = open_source({"builtin": "digits", "limit": 500})
    assert a.digest() == b.digest()
    c = open_source("builtin:digits?limit=60&split=test&seed=2&test_size=0.3")
    assert (
        c.digest() == load_builtin("digits", limit=60, split="test", seed=2, test_size=0.3).digest()
    )
    assert len(open_source("builtin:digits?limit=500", limit=30)) == 30  # kwargs override
    assert len(open_source("builtin:digits?limit=none")) == 1797


def test_folder_and_tables(class_folder: Path, tmp_path: Path) -> None:
    assert isinstance(open_source(class_folder), ImageFolderSource)
    assert isinstance(open_source(str(class_folder), extensions=[".png"]), ImageFolderSource)
    texts = tmp_path / "t.jsonl"
    pd.DataFrame({"text": ["a", "b"], "y": ["p", "q"]}).to_json(texts, orient="records", lines=True)
    src = open_source(texts, label_column="y")
    assert isinstance(src, TextTableSource) and src.classes == ["p", "q"]
    write_png(tmp_path / "im.png", solid((1, 2, 3)))
    images = tmp_path / "i.parquet"
    pd.DataFrame({"path": ["im.png"]}).to_parquet(images)
    assert isinstance(open_source(images), ImageTableSource)
    assert isinstance(open_source({"path": str(images)}), ImageTableSource)
    # Named columns decide, whatever the column names.
    other = tmp_path / "o.csv"
    pd.DataFrame({"body": ["x"], "file": ["im.png"]}).to_csv(other, index=False)
    assert isinstance(open_source(other, text_column="body"), TextTableSource)
    assert isinstance(open_source(other, path_column="file"), ImageTableSource)
    with pytest.raises(
        ConfigError, match=r"neither a 'text' nor a 'path' column \(columns: \['body', 'file'\]\)"
    ):
        open_source(other)
    both = tmp_path / "b.csv"
    pd.DataFrame({"text": ["x"], "path": ["im.png"]}).to_csv(both, index=False)
    with pytest.raises(ConfigError, match="both a 'text' and a 'path' column"):
        open_source(both)
    assert isinstance(open_source(both, modality="image"), ImageTableSource)


def test_torchvision_form_needs_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs root=DIR"):
        open_source("torchvision:FashionMNIST")
    with pytest.raises(ConfigError, match="not found: looked in"):
        open_source(f"torchvision:FashionMNIST?root={tmp_path}&split=test")


def test_ready_source_passes_through() -> None:
    src = ArraySource(["a"])
    assert open_source(src) is src


def test_unknown_forms_list_what_exists(tmp_path: Path) -> None:
    for spec, close in (
        ("s3://bucket/data", ""),
        ("torchvison:CIFAR10", "; did you mean 'torchvision'[?]"),
    ):
        with pytest.raises(
            NotFoundError, match=f"unknown source '{spec}': no source form .*{close}.*'builtin:NAME"
        ):
            open_source(spec)
    with pytest.raises(ConfigError, match=r"does not exist.*Use one of: 'builtin:NAME"):
        open_source(tmp_path / "missing_dir")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="neither a folder of images nor a table"):
        open_source(tmp_path / "notes.txt")
    with pytest.raises(NotFoundError, match="unknown builtin dataset 'cifar'; available: digits"):
        open_source("builtin:cifar")
    with pytest.raises(
        ConfigError, match=r"unknown option\(s\) \['limt'\]; accepted: \['name', 'limit'"
    ):
        open_source("builtin:digits?limt=5")
    with pytest.raises(ConfigError, match="exactly one of 'builtin', 'hf', 'torchvision', 'path'"):
        open_source({"limit": 5})
    with pytest.raises(ConfigError, match="cannot open a source from a int"):
        open_source(5)  # type: ignore[arg-type]


def test_torchvision_open_through_dict(tmp_path: Path, class_folder: Path) -> None:
    src = open_source({"torchvision": "ImageFolder", "root": str(class_folder)})
    assert isinstance(src, TorchvisionSource) and src.classes == ["cat", "dog"]


def test_subset_view() -> None:
    base = ArraySource(
        np.arange(5 * 2 * 2, dtype=np.uint8).reshape(5, 2, 2), labels=["a", "b", "a", "c", "b"]
    )
    view = subset(base, [4, 1, 2])
    assert isinstance(view, SubsetSource)
    assert view.ids == ["item-000004", "item-000001", "item-000002"]
    assert view.labels.tolist() == [1, 1, 0] and view.classes == ["a", "b", "c"]
    assert view.content_hash(0) == base.content_hash(4)
    assert np.array_equal(np.asarray(view.load(2)), np.asarray(base.load(2)))
    assert view.content_hashes() == [base.content_hash(k) for k in (4, 1, 2)]
    # Equal to the same items built directly.
    direct = ArraySource(
        base.images[[4, 1, 2]], labels=["b", "b", "a"], classes=["a", "b", "c"], ids=view.ids
    )
    assert view.digest() == direct.digest()
    # A view of a view points at the base; a boolean mask works.
    inner = subset(view, [2, 0])
    assert inner.parent is base and inner.ids == ["item-000002", "item-000004"]
    assert subset(base, base.labels == 1).ids == ["item-000001", "item-000004"]
    assert subset(base, [-1]).ids == ["item-000004"]
    with pytest.raises(ConfigError, match="repeat"):
        subset(base, [1, 1])
    with pytest.raises(ConfigError, match="index 5 is out of range"):
        subset(base, [0, 5])
    assert subset(base, []).digest() == ArraySource(base.images[:0], classes=base.classes).digest()
