from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from embedpipe.data import ImageTableSource, TextTableSource, table_columns
from embedpipe.errors import ConfigError, ItemError, NotFoundError

from .conftest import solid, write_png

TEXT_ROWS = [
    {"id": "r1", "text": "A three-hour cinema master class.", "label": "fresh"},
    {"id": "r2", "text": "A dark, dull thriller.", "label": "rotten"},
    {"id": "r3", "text": "Difficult to peg.", "label": None},
    {"id": "r4", "text": "NA", "label": "fresh"},
]


def write_table(df: pd.DataFrame, path: Path) -> Path:
    name = path.name
    if name.endswith(".parquet"):
        df.to_parquet(path, index=False)
    elif ".jsonl" in name:
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        df.to_csv(path, index=False, sep="\t" if ".tsv" in name else ",")
    return path


@pytest.fixture
def image_table_dir(tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    write_png(d / "images" / "x.png", solid((200, 0, 0)))
    write_png(d / "images" / "y.png", solid((0, 200, 0)))
    write_png(d / "images" / "z.png", solid((0, 0, 200)))
    return d


IMAGE_ROWS = [
    {"path": "images/x.png", "label": 10, "key": "a"},
    {"path": "images/y.png", "label": 2, "key": "b"},
    {"path": "images/z.png", "label": 2, "key": "c"},
]


@pytest.mark.parametrize(
    "suffix", [".csv", ".csv.bz2", ".csv.gz", ".tsv", ".jsonl", ".jsonl.gz", ".parquet"]
)
def test_text_table_formats_agree(tmp_path: Path, suffix: str) -> None:
    path = write_table(pd.DataFrame(TEXT_ROWS), tmp_path / f"reviews{suffix}")
    src = TextTableSource(path, label_column="label", id_column="id")
    assert src.modality == "text"
    assert src.ids == ["r1", "r2", "r3", "r4"]
    assert src.classes == ["fresh", "rotten"]
    assert src.labels.tolist() == [0, 1, -1, 0]
    assert src.load(0) == "A three-hour cinema master class."
    assert src.load(3) == "NA"  # a text, not a missing value
    assert (
        src.content_hash(1) == hashlib.blake2b(b"A dark, dull thriller.", digest_size=16).digest()
    )
    reference = TextTableSource(
        write_table(pd.DataFrame(TEXT_ROWS), tmp_path / "ref.csv"),
        label_column="label",
        id_column="id",
    )
    assert src.digest() == reference.digest()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_image_table_formats_agree(image_table_dir: Path, suffix: str) -> None:
    path = write_table(pd.DataFrame(IMAGE_ROWS), image_table_dir / f"index{suffix}")
    src = ImageTableSource(path, label_column="label")
    assert src.modality == "image"
    assert src.ids == ["row-000000", "row-000001", "row-000002"]
    assert src.classes == ["2", "10"]  # integers sort numerically
    assert src.labels.tolist() == [1, 0, 0]
    assert src.load(1).getpixel((0, 0)) == (0, 200, 0)
    data = (image_table_dir / "images" / "z.png").read_bytes()
    assert src.content_hash(2) == hashlib.blake2b(data, digest_size=16).digest()
    keyed = ImageTableSource(path, label_column="label", id_column="key")
    assert keyed.ids == ["a", "b", "c"]


def test_image_paths_relative_to_root(tmp_path: Path, image_table_dir: Path) -> None:
    table = write_table(pd.DataFrame({"file": ["x.png", "z.png"]}), tmp_path / "list.csv")
    src = ImageTableSource(table, path_column="file", root=image_table_dir / "images")
    assert src.load(1).getpixel((1, 1)) == (0, 0, 200)
    assert src.classes == [] and src.labels.tolist() == [-1, -1]
    absolute = write_table(
        pd.DataFrame({"path": [str(image_table_dir / "images" / "y.png")]}), tmp_path / "abs.csv"
    )
    assert ImageTableSource(absolute).load(0).getpixel((0, 0)) == (0, 200, 0)
    with pytest.raises(ConfigError, match="root 'nowhere' is not a folder"):
        ImageTableSource(table, path_column="file", root="nowhere")


def test_digest_survives_moving_table_and_images(image_table_dir: Path, tmp_path: Path) -> None:
    write_table(pd.DataFrame(IMAGE_ROWS), image_table_dir / "index.csv")
    d = ImageTableSource(image_table_dir / "index.csv", label_column="label").digest()
    moved = tmp_path / "moved"
    shutil.move(str(image_table_dir), moved)
    assert ImageTableSource(moved / "index.csv", label_column="label").digest() == d
    write_png(moved / "images" / "y.png", solid((0, 201, 0)))
    assert ImageTableSource(moved / "index.csv", label_column="label").digest() != d


def test_missing_image_file_is_an_item_error(image_table_dir: Path) -> None:
    rows = [
        *IMAGE_ROWS,
        {"path": "images/w.png", "label": 2, "key": "d"},
        {"path": "", "label": 2, "key": "e"},
    ]
    src = ImageTableSource(
        write_table(pd.DataFrame(rows), image_table_dir / "t.csv"), id_column="key"
    )
    with pytest.raises(ItemError, match="file not found.*closest names") as e:
        src.load(3)
    assert e.value.item_id == "d"
    with pytest.raises(ItemError, match="empty path in column 'path'") as e:
        src.load(4)
    assert e.value.item_id == "e"


def test_label_mapping(tmp_path: Path) -> None:
    df = pd.DataFrame(
        {"text": ["a", "b", "c", "d", "e"], "label": ["dog", "cat", "", "dog", "bird"]}
    )
    src = TextTableSource(write_table(df, tmp_path / "t.csv"), label_column="label")
    assert src.classes == ["bird", "cat", "dog"]
    assert src.labels.tolist() == [2, 1, -1, 2, 0]
    fixed = TextTableSource(
        tmp_path / "t.csv", label_column="label", classes=["dog", "cat", "bird", "fish"]
    )
    assert fixed.classes == ["dog", "cat", "bird", "fish"]
    assert fixed.labels.tolist() == [0, 1, -1, 0, 2]
    with pytest.raises(ConfigError, match="not among the given classes.*'bird'"):
        TextTableSource(tmp_path / "t.csv", label_column="label", classes=["dog", "cat"])
    # Integer labels with a gap in a JSONL file (NaN = missing) stay numeric.
    ints = pd.DataFrame({"text": ["a", "b", "c"], "label": [3.0, None, 1.0]})
    src = TextTableSource(write_table(ints, tmp_path / "i.jsonl"), label_column="label")
    assert src.classes == ["1", "3"] and src.labels.tolist() == [1, -1, 0]


def test_ids_from_csv_keep_leading_zeros(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,text\n007,a\n010,b\n")
    assert TextTableSource(path, id_column="id").ids == ["007", "010"]


def test_row_ids_are_stable(tmp_path: Path) -> None:
    path = write_table(pd.DataFrame({"text": ["a", "b"]}), tmp_path / "t.csv")
    first = TextTableSource(path)
    path.write_text("text\na\nb\nc\n")
    grown = TextTableSource(path)
    assert grown.ids[:2] == first.ids == ["row-000000", "row-000001"]
    assert grown.content_hashes()[:2] == first.content_hashes()


def test_duplicate_and_empty_ids(tmp_path: Path) -> None:
    path = write_table(
        pd.DataFrame({"id": ["a", "b", "a", "c", "c"], "text": list("vwxyz")}), tmp_path / "t.csv"
    )
    with pytest.raises(ConfigError, match=r"2 duplicated id\(s\): \['a', 'c'\]"):
        TextTableSource(path, id_column="id")
    path = write_table(
        pd.DataFrame({"id": ["a", None], "text": ["v", "w"]}), tmp_path / "u.parquet"
    )
    with pytest.raises(ConfigError, match=r"empty in 1 row\(s\) \(first rows: \[1\]\)"):
        TextTableSource(path, id_column="id")


def test_empty_text_is_an_item_error(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        "\n".join(
            json.dumps(r) for r in [{"text": "fine"}, {"text": "   "}, {"text": None}, {"text": ""}]
        )
    )
    src = TextTableSource(path)
    assert src.load(0) == "fine"
    for i in (1, 2, 3):
        with pytest.raises(ItemError, match="empty text") as e:
            src.load(i)
        assert e.value.item_id == src.ids[i]
    assert src.content_hash(3) == hashlib.blake2b(b"", digest_size=16).digest()


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv.gz"])
def test_unknown_columns_list_the_available_ones(tmp_path: Path, suffix: str) -> None:
    path = write_table(pd.DataFrame(TEXT_ROWS), tmp_path / f"t{suffix}")
    assert table_columns(path) == ["id", "text", "label"]
    with pytest.raises(
        NotFoundError,
        match=r"label_column='lable'.*available columns: \['id', 'text', 'label'\].*did you mean 'label'",
    ):
        TextTableSource(path, label_column="lable")
    with pytest.raises(NotFoundError, match=r"text_column='body'.*available columns"):
        TextTableSource(path, text_column="body")
    with pytest.raises(NotFoundError, match=r"path_column='path'.*available columns"):
        ImageTableSource(path)


def test_bad_table_paths(tmp_path: Path) -> None:
    write_table(pd.DataFrame(TEXT_ROWS), tmp_path / "reviews.csv")
    with pytest.raises(ConfigError, match="does not exist.*closest names: reviews.csv"):
        TextTableSource(tmp_path / "reveiws.csv")
    with pytest.raises(ConfigError, match="is a folder"):
        TextTableSource(tmp_path)
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(ConfigError, match=r"unknown table format; use one of .*\.csv"):
        TextTableSource(tmp_path / "data.xlsx")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match="cannot read table"):
        TextTableSource(broken)
