from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from embedpipe.data import (
    ArraySource,
    DataSource,
    ImageFolderSource,
    ImageTableSource,
    TextTableSource,
    TorchvisionSource,
    content_hashes,
    digest,
    load_builtin,
    subset,
)


def _sources(class_folder: Path, tmp_path: Path) -> dict[str, DataSource]:
    import torchvision.datasets as tvd

    texts = tmp_path / "t.csv"
    pd.DataFrame({"text": ["one", "two", "three"], "label": ["x", "y", "x"]}).to_csv(
        texts, index=False
    )
    table = class_folder / "list.jsonl"
    pd.DataFrame({"path": ["cat/a.png", "dog/e.png"], "label": [1, 0]}).to_json(
        table, orient="records", lines=True
    )
    folder = ImageFolderSource(class_folder)
    return {
        "folder": folder,
        "image_table": ImageTableSource(table, label_column="label"),
        "text_table": TextTableSource(texts, label_column="label"),
        "array": ArraySource(np.arange(48, dtype=np.uint8).reshape(3, 4, 4), labels=[0, 1, 1]),
        "texts": ArraySource(["a b", "c"], labels=["p", "q"]),
        "builtin": load_builtin("digits", limit=20),
        "torchvision": TorchvisionSource(tvd.ImageFolder(str(class_folder))),
        "subset": subset(folder, [3, 0]),
    }


def _same_item(a: Any, b: Any) -> bool:
    if isinstance(a, str):
        return a == b
    return a.size == b.size and a.tobytes() == b.tobytes()


def test_every_source_round_trips_through_pickle(class_folder: Path, tmp_path: Path) -> None:
    for name, src in _sources(class_folder, tmp_path).items():
        assert isinstance(src, DataSource), name
        d = src.digest()
        back = pickle.loads(pickle.dumps(src))
        assert type(back) is type(src), name
        assert list(back.ids) == list(src.ids), name
        assert back.labels.tolist() == src.labels.tolist() and back.classes == src.classes, name
        assert back.digest() == d, name
        assert _same_item(back.load(0), src.load(0)), name
        assert json.loads(json.dumps(src.describe()))["n_items"] == len(src), name


class _Loads:
    """What the encoder's DataLoader does: call load(i) inside worker processes."""

    def __init__(self, src: DataSource) -> None:
        self.src = src

    def __len__(self) -> int:
        return len(self.src)

    def __getitem__(self, i: int) -> Any:
        item = self.src.load(i)
        return item if isinstance(item, str) else np.asarray(item)


def test_load_in_dataloader_worker_processes(class_folder: Path, tmp_path: Path) -> None:
    from torch.utils.data import DataLoader

    sources = _sources(class_folder, tmp_path)
    for name in ("folder", "text_table"):
        src = sources[name]
        got = list(DataLoader(_Loads(src), batch_size=None, num_workers=2))
        want = [_Loads(src)[i] for i in range(len(src))]
        for g, w in zip(got, want, strict=True):
            assert g == w if isinstance(w, str) else np.array_equal(np.asarray(g), w), name


def test_digest_covers_ids_hashes_labels_and_classes() -> None:
    x = np.arange(3 * 4, dtype=np.uint8).reshape(3, 2, 2)
    base = ArraySource(x, labels=[0, 1, 0], classes=["a", "b"])
    d = base.digest()
    assert digest(base) == d and len(d) == 32
    assert ArraySource(x.copy(), labels=[0, 1, 0], classes=["a", "b"]).digest() == d
    changed = {
        "label": ArraySource(x, labels=[0, 1, 1], classes=["a", "b"]),
        "class name": ArraySource(x, labels=[0, 1, 0], classes=["a", "c"]),
        "extra class": ArraySource(x, labels=[0, 1, 0], classes=["a", "b", "c"]),
        "id": ArraySource(
            x, labels=[0, 1, 0], classes=["a", "b"], ids=["item-000000", "item-000001", "z"]
        ),
        "pixels": ArraySource(x + 1, labels=[0, 1, 0], classes=["a", "b"]),
        "order": ArraySource(
            x[[1, 0, 2]],
            labels=[1, 0, 0],
            classes=["a", "b"],
            ids=["item-000001", "item-000000", "item-000002"],
        ),
    }
    for what, other in changed.items():
        assert other.digest() != d, what


def test_content_hashes_helper_uses_bulk_path(class_folder: Path) -> None:
    src = ImageFolderSource(class_folder)
    assert content_hashes(src) == [src.content_hash(i) for i in range(len(src))]


def test_digest_is_unambiguous_about_id_boundaries() -> None:
    # Ids are length-prefixed: "ab" + "c" and "a" + "bc" must not collide.
    assert (
        ArraySource(["x", "y"], ids=["ab", "c"]).digest()
        != ArraySource(["x", "y"], ids=["a", "bc"]).digest()
    )
