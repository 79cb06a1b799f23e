"""Moving features out: pandas, Arrow, Parquet, NumPy, CSV and Hugging Face datasets round trips."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from embedpipe.errors import ConfigError, StoreError
from embedpipe.store import FeatureStore, StoreWriter, export


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    p = tmp_path / "s.h5"
    rng = np.random.default_rng(0)
    n = 50
    order = rng.permutation(n)
    x = rng.normal(size=(n, 7)).astype(np.float32)
    w = StoreWriter.create(
        p,
        dim=7,
        fingerprint="fp",
        backbone={"name": "m"},
        classes=["neg", "pos"],
        columns=["url"],
        precision="fp32",
    )
    w.append(
        x[order],
        [f"r{k}" for k in order],
        [bytes(16)] * n,
        np.where(order % 5 == 0, -1, order % 2),
        positions=order,
        contents=[f'review, "{k}"\nline two' for k in order],
        columns={"url": [f"http://x/{k}" for k in order]},
    )
    w.finalize()
    return p


def _expect(fs: FeatureStore) -> dict:
    return {
        "id": fs.ids.tolist(),
        "position": fs.positions.tolist(),
        "label": fs.labels.tolist(),
        "content": fs.contents.tolist(),
        "url": fs.column("url").tolist(),
    }


def test_to_pandas_and_arrow(store: Path) -> None:
    with FeatureStore(store) as fs:
        df = fs.to_pandas()
        assert list(df.columns) == [
            "id",
            "position",
            "label",
            "label_name",
            "content",
            "url",
            "features",
        ]
        for k, v in _expect(fs).items():
            assert df[k].tolist() == v
        names = [None if lab < 0 else fs.classes[lab] for lab in fs.labels]
        assert df.label_name.isna().tolist() == [v is None for v in names]
        assert df.label_name.dropna().tolist() == [v for v in names if v is not None]
        np.testing.assert_array_equal(np.stack(df.features), fs.features)
        t = fs.to_arrow(features=False)
        assert "features" not in t.column_names and t.num_rows == 50


def test_parquet_round_trip(store: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = export(store, tmp_path / "s.parquet", "parquet", batch_size=16)
    t = pq.read_table(out)
    with FeatureStore(store) as fs:
        for k, v in _expect(fs).items():
            assert t.column(k).to_pylist() == v
        np.testing.assert_array_equal(
            np.array(t.column("features").to_pylist(), np.float32), fs.features
        )
        assert b"embedpipe" in t.schema.metadata
    with pytest.raises(StoreError, match="already exists"):
        export(store, out, "parquet")


def test_hf_datasets_round_trip(store: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = export(store, tmp_path / "s-hf", "hf")
    ds = datasets.load_from_disk(str(out))
    with FeatureStore(store) as fs:
        for k, v in _expect(fs).items():
            assert ds[k] == v
        np.testing.assert_array_equal(np.array(ds["features"], np.float32), fs.features)


def test_npy_and_csv(store: Path, tmp_path: Path) -> None:
    out = export(store, tmp_path / "npy", "npy")
    with FeatureStore(store) as fs:
        np.testing.assert_array_equal(np.load(out / "features.npy"), fs.features)
        np.testing.assert_array_equal(np.load(out / "labels.npy"), fs.labels)
        assert np.load(out / "ids.npy").tolist() == fs.ids.tolist()
        c = export(store, tmp_path / "s.csv", "csv", batch_size=7)
        with c.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        assert rows[0][:6] == ["id", "position", "label", "label_name", "content", "url"]
        assert [r[4] for r in rows[1:]] == fs.contents.tolist()  # quotes and newlines survive
        got = np.array([[float(v) for v in r[6:]] for r in rows[1:]], np.float32)
        np.testing.assert_array_equal(got, fs.features)
    with pytest.raises(ConfigError, match="did you mean 'parquet'"):
        export(store, tmp_path / "x", "parket")  # type: ignore[arg-type]
