"""Hugging Face datasets sources: save_to_disk folders, hf: hub ids (a local folder here),
and their equivalence to the CSV / image-folder forms of the same items."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from embedpipe.data import (
    HFImageSource,
    HFTextSource,
    ImageFolderSource,
    ImageTableSource,
    TextTableSource,
    kept_columns,
    open_source,
    reference,
)
from embedpipe.errors import ConfigError, ItemError, NotFoundError

datasets = pytest.importorskip("datasets")
datasets.disable_progress_bars()

TEXTS = ["A three-hour cinema master class.", "A dark, dull thriller.", "Difficult to peg.", "NA"]
LABELS = ["fresh", "rotten", "rotten", "fresh"]


@pytest.fixture
def pets(tmp_path: Path) -> Path:
    """An image folder of random RGB PNGs in two classes."""
    rng = np.random.default_rng(3)
    root = tmp_path / "pets"
    for k in range(6):
        p = root / ("cat" if k % 2 else "dog") / f"{k:02d}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(p)
    return root


def _hf_images(folder: ImageFolderSource) -> object:
    cells = [
        {"bytes": Path(folder.path(i)).read_bytes(), "path": folder.ids[i]}
        for i in range(len(folder))
    ]
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=folder.classes)}
    )
    return datasets.Dataset.from_dict(
        {"image": cells, "label": folder.labels.tolist()}, features=features
    )


def test_text_folder_matches_the_csv(tmp_path: Path) -> None:
    csv = tmp_path / "reviews.csv"
    pd.DataFrame({"text": TEXTS, "label": LABELS, "url": ["u0", "u1", "u2", "u3"]}).to_csv(
        csv, index=False
    )
    table = TextTableSource(csv, label_column="label")
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["fresh", "rotten"]),
            "url": datasets.Value("string"),
        }
    )
    ds = datasets.Dataset.from_dict(
        {"text": TEXTS, "label": [0, 1, 1, 0], "url": ["u0", "u1", "u2", "u3"]}, features=features
    )
    datasets.DatasetDict(train=ds, test=ds.select([1, 2])).save_to_disk(str(tmp_path / "hf"))
    src = open_source(tmp_path / "hf", split="train", keep_columns="url")
    assert isinstance(src, HFTextSource)
    assert src.content_hashes() == table.content_hashes()
    assert src.classes == table.classes and src.labels.tolist() == table.labels.tolist()
    assert [src.load(i) for i in range(4)] == TEXTS and reference(src, 3) == "NA"
    assert src.ids[0] == "train/000000" and kept_columns(src) == {"url": ["u0", "u1", "u2", "u3"]}
    test = open_source({"path": str(tmp_path / "hf"), "split": "test"})
    assert test.content_hashes() == [table.content_hash(1), table.content_hash(2)]
    as_string = open_source(f"{tmp_path / 'hf'}?split=test")  # what --data takes
    assert as_string.content_hashes() == test.content_hashes()
    with pytest.raises(NotFoundError, match="split='tset'.*did you mean 'test'"):
        open_source(tmp_path / "hf", split="tset")
    with pytest.raises(NotFoundError, match="text_column='txt'.*did you mean 'text'"):
        open_source(tmp_path / "hf", text_column="txt")
    # A single Dataset folder needs no split; labels=False drops the ClassLabel column.
    ds.save_to_disk(str(tmp_path / "one"))
    one = open_source(tmp_path / "one", label_column=False)
    assert one.classes == [] and one.labels.tolist() == [-1] * 4
    ds.map(lambda r: {"text": ""} if r["url"] == "u2" else r).save_to_disk(str(tmp_path / "gap"))
    with pytest.raises(ItemError, match="empty text"):
        open_source(tmp_path / "gap").load(2)


def test_image_folder_parquet_bytes_and_hf_folder_agree(pets: Path, tmp_path: Path) -> None:
    folder = ImageFolderSource(pets)
    ds = _hf_images(folder)
    ds.save_to_disk(str(tmp_path / "hf"))
    hf = open_source(tmp_path / "hf")
    assert isinstance(hf, HFImageSource)
    parquet = tmp_path / "pets.parquet"
    ds.to_parquet(str(parquet))  # HF's own parquet export: {bytes, path} structs
    table = open_source(parquet, label_column="label")
    assert isinstance(table, ImageTableSource)
    for src in (hf, table):
        assert src.content_hashes() == folder.content_hashes()
        assert np.array_equal(np.asarray(src.load(4)), np.asarray(folder.load(4)))
    assert hf.classes == folder.classes and hf.labels.tolist() == folder.labels.tolist()
    assert reference(hf, 1) == Path(folder.ids[1]).name  # the name the dataset recorded
    again = pickle.loads(pickle.dumps(hf))
    assert again.content_hash(5) == folder.content_hash(5)


def test_hf_folder_and_bytes_table_encode_to_the_image_folder_features(
    pets: Path, tmp_path: Path
) -> None:
    """Encoded with one tiny random CNN, the three forms give the same features per item."""
    from embedpipe.backbones import load_backbone
    from embedpipe.encoding import encode
    from embedpipe.store import FeatureStore

    folder = ImageFolderSource(pets)
    ds = _hf_images(folder)
    ds.save_to_disk(str(tmp_path / "hf"))
    ds.to_parquet(str(tmp_path / "pets.parquet"))
    encoder = load_backbone(
        "resnet18", weights=None, crop_size=32, resize_size=32, device="cpu", precision="fp32"
    )
    stores = {}
    for name, spec in (
        ("folder", pets),
        ("hf", tmp_path / "hf"),
        ("parquet", tmp_path / "pets.parquet"),
    ):
        out = tmp_path / f"{name}.h5"
        encode(open_source(spec), encoder, out, batch_size=4, num_workers=0, progress=False)
        with FeatureStore(out) as fs:
            keyed = {bytes(h): f for h, f in zip(fs.content_hashes, fs.features, strict=True)}
        stores[name] = keyed
    assert len(stores["folder"]) == len(folder)
    for name in ("hf", "parquet"):
        assert stores[name].keys() == stores["folder"].keys()
        for h, f in stores["folder"].items():
            np.testing.assert_allclose(stores[name][h], f, rtol=1e-5, atol=1e-6)


def test_hub_form_loads_through_datasets(tmp_path: Path) -> None:
    """``hf:NAME`` goes through datasets.load_dataset (a local data folder stands in for the hub)."""
    data = tmp_path / "reviews"
    data.mkdir()
    pd.DataFrame({"review": TEXTS[:3], "label": LABELS[:3]}).to_csv(data / "train.csv", index=False)
    spec = f"hf:{data}?split=train&text_column=review&label_column=label&cache_dir={tmp_path / 'c'}"
    src = open_source(spec)
    assert isinstance(src, HFTextSource) and [src.load(i) for i in range(3)] == TEXTS[:3]
    assert src.classes == ["fresh", "rotten"] and src.describe()["dataset"] == f"hf:{data}"
    with pytest.raises(ConfigError, match=r"hf:.*nowhere.*cannot load it.*save_to_disk"):
        open_source(f"hf:{tmp_path / 'nowhere'}", cache_dir=str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="has no datasets.Image column and no 'text' column"):
        open_source(f"hf:{data}", cache_dir=str(tmp_path / "c"))


def test_unreachable_hub_fails_fast_naming_the_offline_switch(monkeypatch) -> None:
    import embedpipe.backbones.hf_hub as hub

    monkeypatch.setattr(hub, "hf_offline", lambda: False)
    monkeypatch.setattr(hub, "hub_unreachable", lambda: "no answer from huggingface.co within 3 s")
    with pytest.raises(
        ConfigError,
        match=r"hf:someone/reviews: the Hugging Face hub cannot be "
        r"reached \(no answer.*HF_HUB_OFFLINE=1.*save_to_disk",
    ):
        open_source("hf:someone/reviews?split=train")
