"""Every source's reference(i) (what a person recognises an item by) and kept columns."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embedpipe.data import (
    ArraySource,
    ImageFolderSource,
    ImageTableSource,
    TextTableSource,
    TorchvisionSource,
    kept_columns,
    open_source,
    reference,
    subset,
)
from embedpipe.data.base import MAX_REFERENCE_CHARS
from embedpipe.errors import ItemError, NotFoundError

from .conftest import solid, write_png


def test_text_sources_refer_to_their_text(tmp_path: Path) -> None:
    long = "word " * 1000
    path = tmp_path / "t.csv"
    pd.DataFrame({"text": ["a fine film", long], "id": ["x", "y"]}).to_csv(path, index=False)
    src = TextTableSource(path, id_column="id")
    assert reference(src, 0) == "a fine film"
    cut = reference(src, 1)
    assert len(cut) == MAX_REFERENCE_CHARS and cut.endswith("…") and long.startswith(cut[:-1])
    assert reference(subset(src, [1, 0]), 1) == "a fine film"
    assert reference(open_source("builtin:rotten_tomatoes?limit=3"), 0).strip() != ""


def test_image_sources_refer_to_their_files(class_folder: Path, tmp_path: Path) -> None:
    folder = ImageFolderSource(class_folder)
    k = folder.ids.index("cat/a.png")
    assert reference(folder, k) == str(class_folder.resolve() / "cat" / "a.png")
    assert Path(reference(folder, k)).is_file()
    table = tmp_path / "i.csv"
    pd.DataFrame({"path": ["pets/cat/b.png"]}).to_csv(table, index=False)
    assert reference(ImageTableSource(table), 0) == str(tmp_path / "pets" / "cat" / "b.png")
    import torchvision.datasets as tvd

    tv = TorchvisionSource(tvd.ImageFolder(str(class_folder)))
    assert Path(reference(tv, 0)).is_file()
    arrays = ArraySource(np.zeros((2, 4, 4), np.uint8), ids=["p", "q"])
    assert reference(arrays, 1) == "q"  # in-memory images have only their key


def test_keep_columns_come_back_per_row_as_text(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame(
        {
            "text": ["a", "b", "c"],
            "title": ["A", None, "C"],
            "url": ["u1", "u2", "u3"],
            "year": [1999, 2001, 2020],
        }
    ).to_parquet(path)
    src = open_source(path, keep_columns="title,year")
    assert kept_columns(src) == {"title": ["A", "", "C"], "year": ["1999", "2001", "2020"]}
    assert src.describe()["keep_columns"] == ["title", "year"]
    assert kept_columns(subset(src, [2, 0])) == {"title": ["C", "A"], "year": ["2020", "1999"]}
    assert kept_columns(open_source(path)) == {}
    assert kept_columns(pickle.loads(pickle.dumps(src))) == kept_columns(src)
    with pytest.raises(NotFoundError, match=r"keep_columns='ur'.*did you mean 'url'"):
        TextTableSource(path, keep_columns=["ur"])


def test_image_bytes_tables(tmp_path: Path) -> None:
    """Parquet and Arrow tables whose image column holds bytes or HF's {bytes, path} struct."""
    import pyarrow as pa
    import pyarrow.feather as feather

    files = [write_png(tmp_path / "src" / f"{k}.png", solid((k * 40, 0, 0))) for k in range(3)]
    data = [f.read_bytes() for f in files]
    expected = [hashlib.blake2b(b, digest_size=16).digest() for b in data]
    raw = tmp_path / "raw.parquet"
    pd.DataFrame({"image": data, "y": ["a", "b", "a"]}).to_parquet(raw)
    src = open_source(raw, label_column="y")  # an 'image' column: image bytes
    assert isinstance(src, ImageTableSource) and src.modality == "image"
    assert src.content_hashes() == expected
    assert src.load(2).getpixel((0, 0)) == (80, 0, 0) and src.classes == ["a", "b"]
    assert reference(src, 0).endswith("raw.parquet#row-000000")
    struct = tmp_path / "hf.arrow"
    cells = [{"bytes": b, "path": f"orig/{k}.png"} for k, b in enumerate(data)]
    feather.write_feather(pa.table({"img": cells, "key": ["p", "q", "r"]}), struct)
    src2 = open_source(struct, image_column="img", id_column="key")
    assert src2.ids == ["p", "q", "r"] and src2.content_hashes() == expected
    assert reference(src2, 1) == "orig/1.png"
    # A struct without bytes points at a file relative to the table's folder.
    paths = tmp_path / "paths.parquet"
    pd.DataFrame({"img": [{"bytes": None, "path": "src/1.png"}]}).to_parquet(paths)
    assert ImageTableSource(paths, image_column="img").content_hashes() == [expected[1]]
    # Workers get the table, not its bytes, and read them back.
    pickled = pickle.dumps(src)
    assert not any(b in pickled for b in data)
    assert pickle.loads(pickled).content_hash(1) == expected[1]
    # A bad cell is an item error naming the item.
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"image": [b"not an image", None]}).to_parquet(bad)
    broken = ImageTableSource(bad, image_column="image")
    with pytest.raises(ItemError, match="row-000000.*not a readable image"):
        broken.load(0)
    with pytest.raises(ItemError, match="row-000001.*no image in its cell"):
        broken.load(1)
