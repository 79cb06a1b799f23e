"""Building indexes from feature stores: exactness, auto recall, tuning, out-of-core, merging."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from embedpipe.errors import ConfigError, FingerprintMismatchError, StoreError
from embedpipe.index import build_index
from embedpipe.index.params import hnsw_of
from embedpipe.store import FeatureStore

from .conftest import write_store


def _brute_force(
    X: np.ndarray, Q: np.ndarray, k: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """Plain numpy nearest neighbours: (rows, scores)."""
    X = X.astype(np.float64)
    Q = Q.astype(np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    if metric == "l2":
        cost = np.sqrt(((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    else:
        cost = -(Q @ X.T)
    part = np.argpartition(cost, k, axis=1)[:, :k]
    rows = np.take_along_axis(part, np.argsort(np.take_along_axis(cost, part, 1), axis=1), 1)
    best = np.take_along_axis(cost, rows, 1)
    return rows, best if metric == "l2" else -best


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple:
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 48)).astype(np.float32)
    Q = rng.normal(size=(40, 48)).astype(np.float32)
    path = write_store(
        tmp_path_factory.mktemp("small") / "small.h5",
        X,
        labels=rng.integers(0, 3, 3000),
        classes=["a", "b", "c"],
    )
    return path, X, Q


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_exact_index_returns_numpy_brute_force_neighbours(small, metric):
    path, X, Q = small
    index = build_index(path, "flat", metric=metric, batch_size=700)  # several batches
    rows_np, scores_np = _brute_force(X, Q, 10, metric)
    hits = index.search(Q, k=10)
    rows = np.array([[h.row for h in q] for q in hits])
    scores = np.array([[h.score for h in q] for q in hits])
    np.testing.assert_array_equal(rows, rows_np)
    np.testing.assert_allclose(scores, scores_np, rtol=1e-4, atol=1e-4)
    assert [h.id for h in hits[0]] == [f"v{r:06d}" for r in rows_np[0]]
    assert index.meta.kind == "flat" and index.meta.tuning is None


def test_auto_reaches_recall_at_10_on_clustered_data(auto_index, blobs, blob_queries):
    """auto on 20k clustered 384-d vectors: recall@10 ≥ 0.95 on fresh queries vs numpy."""
    _, X, _ = blobs
    _, Q = blob_queries
    assert auto_index.meta.kind == "ivf"
    assert auto_index.meta.tuning["reached"]
    truth, _ = _brute_force(X, Q, 10, "cosine")
    _, found = auto_index.search_arrays(Q, 10)
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.95
    # It searches a small part of the lists, not all of them (which would be exact search).
    nlist = int(auto_index.meta.factory.split(",")[0][3:])
    assert auto_index.search_params["nprobe"] < nlist / 4


def test_tuning_picks_the_smallest_value_reaching_the_target(auto_index):
    t = auto_index.meta.tuning
    curve = {int(v): (r, low) for v, r, low, _ in t["curve"]}
    v = t["value"]
    assert curve[v][1] >= t["target_recall"] and t["recall_low"] == pytest.approx(
        curve[v][1], abs=1e-5
    )
    assert v == 1 or curve[v - 1][1] < t["target_recall"]
    assert all(
        curve[a][0] <= curve[b][0] + 0.01
        for a, b in zip(sorted(curve), sorted(curve)[1:], strict=False)
    )


def test_build_reads_batches_never_the_whole_store(blobs, monkeypatch):
    path, X, _ = blobs

    def whole(self):
        raise AssertionError("the build loaded a whole store into memory")

    a = build_index(path, "ivf", batch_size=2500, n_tune_queries=200)
    monkeypatch.setattr(FeatureStore, "features", property(whole))
    b = build_index(path, "ivf", batch_size=50_000, n_tune_queries=200)
    assert a.meta.search_params == b.meta.search_params
    np.testing.assert_array_equal(a.search_arrays(X[:50], 10)[1], b.search_arrays(X[:50], 10)[1])


@pytest.mark.parametrize(
    ("kind", "param"), [("hnsw", "efSearch"), ("ivfsq", "nprobe"), ("RR32,IVF64,SQ8", "nprobe")]
)
def test_other_kinds_build_tune_and_search(tmp_path, kind, param):
    X, _ = make_blobs(6000, n_features=32, centers=30, random_state=3)
    X = X.astype(np.float32)
    path = write_store(tmp_path / "s.h5", X)
    index = build_index(path, kind, target_recall=0.9, n_tune_queries=300)
    t = index.meta.tuning
    assert t["param"] == param and index.search_params == {param: t["value"]}
    assert t["reached"] and t["recall"] >= 0.9
    if kind == "hnsw":  # built with more effort than FAISS's default 40 (see build.py)
        assert hnsw_of(index.faiss_index).hnsw.efConstruction == 128
    hits = index.search_ids(["v000010"], k=5)[0]
    assert len(hits) == 5 and "v000010" not in [h.id for h in hits]


def test_unreachable_target_is_reported_with_the_best_value(tmp_path, caplog):
    """IVF-PQ's 4-byte codes cannot rank close neighbours inside a blob: the build says so."""
    X, _ = make_blobs(2500, n_features=16, centers=10, random_state=3)
    path = write_store(tmp_path / "s.h5", X.astype(np.float32))
    index = build_index(path, "ivfpq", target_recall=0.99, n_tune_queries=200)
    t = index.meta.tuning
    assert index.meta.factory.endswith("PQ4x8") and not t["reached"]
    best = max(r for _, r, _, _ in t["curve"])
    assert t["recall"] == pytest.approx(best, abs=1e-5) and best < 0.99
    assert index.search_params == {"nprobe": t["value"]}
    assert "not reached" in caplog.text


def test_fixed_search_params_skip_tuning(blobs):
    index = build_index(blobs[0], "ivf", search_params={"nprobe": 3})
    assert index.meta.tuning is None and index.search_params == {"nprobe": 3}
    with pytest.raises(ConfigError, match="efSearch"):
        build_index(blobs[0], "ivf", search_params={"efSearch": 3})


def test_several_stores_merge_ids_labels_and_classes(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.normal(size=(300, 16)).astype(np.float32)
    B = rng.normal(size=(200, 16)).astype(np.float32)
    pa = write_store(
        tmp_path / "a.h5",
        A,
        labels=[0, 1] * 150,
        classes=["cat", "dog"],
        ids=[f"a{i}" for i in range(300)],
    )
    pb = write_store(
        tmp_path / "b.h5",
        B,
        labels=[0, 1, -1, 1] * 50,
        classes=["dog", "bird"],
        ids=[f"b{i}" for i in range(200)],
    )
    index = build_index([pa, pb], "flat")
    assert len(index) == 500 and index.classes == ["cat", "dog", "bird"]
    top = index.search(B[:4], k=1)
    assert [h[0].id for h in top] == ["b0", "b1", "b2", "b3"]
    assert [h[0].label for h in top] == ["dog", "bird", None, "bird"]
    assert index.search(A[1], k=1)[0][0].label == "dog"
    assert [s.n_rows for s in index.meta.sources] == [300, 200]
    assert [s.offset for s in index.meta.sources] == [0, 300]


def test_stores_of_different_backbones_are_refused(tmp_path, small):
    _, X, _ = small
    pa = write_store(tmp_path / "a.h5", X[:100])
    pb = write_store(
        tmp_path / "b.h5",
        X[100:200],
        ids=[f"w{i}" for i in range(100)],
        fingerprint="fp-other",
        backbone={"kind": "x", "name": "other-model", "modality": "text"},
    )
    with pytest.raises(FingerprintMismatchError) as e:
        build_index([pa, pb], "flat")
    assert "b.h5" in str(e.value) and "other-model" in str(e.value)


def test_repeated_ids_across_stores_need_prefixes(tmp_path, small):
    _, X, _ = small
    pa = write_store(tmp_path / "train.h5", X[:100])
    pb = write_store(tmp_path / "test.h5", X[100:150])
    with pytest.raises(ConfigError, match="prefix_ids"):
        build_index([pa, pb], "flat")
    index = build_index([pa, pb], "flat", prefix_ids=True)
    assert index.ids[0] == "train/v000000" and index.ids[100] == "test/v000000"
    assert index.search(X[120], k=1)[0][0].id == "test/v000020"


def test_incomplete_store_is_refused(tmp_path, small):
    _, X, _ = small
    p = write_store(tmp_path / "half.h5", X[:100], complete=False)
    with pytest.raises(StoreError, match="incomplete"):
        build_index(p, "flat")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"metric": "hamming"}, "metric"),
        ({"target_recall": 1.5}, "target_recall"),
        ({"k": 0}, "k=0"),
        ({"kind": "kdtree"}, "kdtree"),
    ],
)
def test_bad_options_are_clear_errors(small, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        build_index(small[0], **kwargs)
