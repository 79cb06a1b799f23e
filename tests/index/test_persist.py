"""Saving and loading index folders: round trip, provenance, no pickle, refusals, corruption."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from embedpipe.errors import ConfigError, StoreError
from embedpipe.index import SimilarityIndex, build_index, load_index


@pytest.fixture(scope="module")
def saved(auto_index, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "blobs.index"
    auto_index.save(path)
    return path


def test_round_trip_gives_the_same_results_and_provenance(saved, auto_index, blobs):
    path, X, _ = blobs
    loaded = load_index(saved)
    assert sorted(p.name for p in saved.iterdir()) == ["index.faiss", "meta.json", "rows.h5"]
    assert loaded.search_params == auto_index.search_params
    assert loaded.meta.factory == auto_index.meta.factory and loaded.classes == auto_index.classes
    a = auto_index.search(X[:20], k=10)
    b = loaded.search(X[:20], k=10)
    assert [[n.to_dict() for n in q] for q in a] == [[n.to_dict() for n in q] for q in b]
    meta = json.loads((saved / "meta.json").read_text())
    assert meta["fingerprint"] == "fp-blobs" and meta["backbone"]["name"] == "blobs"
    assert (
        meta["sources"][0]["path"] == str(path.resolve()) and meta["sources"][0]["n_rows"] == 20_000
    )
    assert meta["sources"][0]["provenance"]["complete"] is True
    assert meta["tuning"]["reached"] and meta["search_params"] == auto_index.search_params
    assert meta["versions"]["faiss"]


def test_rows_are_plain_hdf5_not_pickle(saved):
    with h5py.File(saved / "rows.h5") as f:
        assert sorted(f) == ["content_hash", "ids", "labels", "source"]
        assert (
            f["ids"].dtype.kind == "O"
            and h5py.check_string_dtype(f["ids"].dtype).encoding == "utf-8"
        )
        assert f["labels"].dtype == np.int64 and len(f["labels"]) == 20_000


def test_existing_index_is_replaced_only_with_overwrite(saved, auto_index, tmp_path):
    with pytest.raises(ConfigError, match="overwrite"):
        auto_index.save(saved)
    auto_index.save(saved, overwrite=True)
    assert load_index(saved).meta.n == 20_000
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.tex").write_text("do not delete")
    with pytest.raises(ConfigError, match="not an embedpipe index"):
        auto_index.save(other, overwrite=True)
    assert (other / "thesis.tex").read_text() == "do not delete"
    assert not list(tmp_path.glob(".*tmp*"))


def test_missing_or_foreign_folders_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        SimilarityIndex.load(tmp_path / "nowhere")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConfigError, match="not an embedpipe index"):
        SimilarityIndex.load(tmp_path / "plain")


@pytest.mark.parametrize(
    "damage", ["meta-json", "meta-field", "index-truncated", "rows-short", "newer-format"]
)
def test_damaged_index_is_a_store_error(tmp_path, damage):
    rng = np.random.default_rng(0)
    from .conftest import write_store

    store = write_store(tmp_path / "s.h5", rng.normal(size=(50, 8)).astype(np.float32))
    path = build_index(store, "flat").save(tmp_path / "i")
    meta = json.loads((path / "meta.json").read_text())
    if damage == "meta-json":
        (path / "meta.json").write_text("{not json")
    elif damage == "meta-field":
        meta["metric"] = "manhattan"
        (path / "meta.json").write_text(json.dumps(meta))
    elif damage == "index-truncated":
        data = (path / "index.faiss").read_bytes()
        (path / "index.faiss").write_bytes(data[: len(data) // 2])
    elif damage == "rows-short":
        with h5py.File(path / "rows.h5", "a") as f:
            del f["labels"]
            f["labels"] = np.zeros(10, np.int64)
    elif damage == "newer-format":
        meta["format_version"] = 99
        (path / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="rebuild the index|upgrade embedpipe"):
        SimilarityIndex.load(path)
