"""Each curate detector finds the faults planted in a small deterministic set and stays quiet
on the same set without them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedpipe.curate import (
    build_knn_graph,
    choose_threshold,
    confident_learning,
    curate,
    open_corpus,
)
from embedpipe.errors import ConfigError, FingerprintMismatchError
from embedpipe.store import StoreWriter

from ._data import DIM, Planted, clean_split, planted


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return planted(tmp_path_factory.mktemp("planted"))


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("clean")
    return clean_split(240, 1, "train").write(tmp / "train.h5"), clean_split(60, 2, "test").write(
        tmp / "test.h5"
    )


def _flagged(result, issue: str) -> set[str]:
    t = result.table
    return set(t[t.issue == issue].id)


@pytest.fixture(scope="module")
def found(faults: Planted):
    return curate([faults.train, faults.test], engine="builtin")


def test_exact_duplicates(found, faults: Planted) -> None:
    assert _flagged(found, "exact_duplicate") == set(faults.exact_dup)
    t = found.table
    row = t[(t.issue == "exact_duplicate") & (t.id == "train-20")].iloc[0]
    assert list(row.related) == ["train:train-21"]


def test_near_duplicates_clustered_with_threshold_explained(found, faults: Planted) -> None:
    assert _flagged(found, "near_duplicate") == set(faults.near_dup)
    t = found.table
    groups = set(t[t.issue == "near_duplicate"].group)
    assert len(groups) == 1 and groups != {-1}
    assert found.threshold.auto and "median" in found.threshold.how
    assert 0.8 <= found.threshold.value < 1.0


def test_leak_across_stores(found, faults: Planted) -> None:
    t = found.table
    leaks = t[t.issue == "leak"]
    assert set(zip(leaks.split, leaks.id, strict=True)) == {
        ("train", "train-30"),
        ("test", "test-5"),
    }
    assert list(leaks[leaks.id == "test-5"].iloc[0].related) == ["train:train-30"]


def test_outlier_ranked_first(found, faults: Planted) -> None:
    assert _flagged(found, "outlier") == {faults.outlier}
    scores = found.outliers.scores
    assert int(np.argmax(scores)) == 50  # train row 50, the first store's rows come first


@pytest.mark.parametrize("engine", ["builtin", "cleanlab"])
@pytest.mark.parametrize("knn_weight", [0.0, 0.3])
def test_label_flips(faults: Planted, engine: str, knn_weight: float) -> None:
    if engine == "cleanlab":
        pytest.importorskip("cleanlab")
    r = curate([faults.train, faults.test], engine=engine, knn_weight=knn_weight)
    t = r.table
    issues = t[t.issue == "label_issue"]
    found = set(issues.id) & set(faults.flipped)
    if knn_weight == 0:
        assert found == set(faults.flipped)
    else:
        # the neighbour vote counts neighbours' labels, flipped ones too: train-3 has two
        # flipped neighbours among its ten, which may hide it
        assert len(found) >= len(faults.flipped) - 1
    # only the flips and the outlier (a point far from every class) are flagged
    assert set(issues.id) - set(faults.flipped) <= {faults.outlier}
    # the suggested label is the class the item was drawn from
    for rec in issues[issues.id.isin(faults.flipped)].to_dict(orient="records"):
        i = int(rec["id"].split("-")[1])
        assert rec["suggested_label"] == ["ant", "bee", "cat"][i % 3]
        assert rec["suggested_label"] != rec["label"]
    assert f"{knn_weight:g} neighbour vote" in r.summary["label_issues_how"] or knn_weight == 0


def test_any_registered_head(faults: Planted) -> None:
    r = curate([faults.train, faults.test], head="nearest_centroid", engine="builtin", knn_weight=0)
    assert set(faults.flipped) <= _flagged(r, "label_issue")
    assert "nearest_centroid" in r.summary["label_issues_how"]


def test_quiet_on_clean_data(clean: tuple[Path, Path]) -> None:
    r = curate(list(clean), engine="builtin")
    assert len(r.table) == 0, r.table
    assert r.summary["counts"] == dict.fromkeys(r.summary["counts"], 0)


def test_threshold_can_be_set(faults: Planted) -> None:
    # typical nearest neighbours here are ~0.96 apart: a threshold of 0.95 calls many of them
    # near-duplicates, the planted pair among them
    r = curate([faults.train, faults.test], near_dup_threshold=0.95, labels=False)
    assert not r.threshold.auto and r.summary["near_dup_threshold"] == 0.95
    assert r.summary["near_dup_threshold_how"] == "set: 0.95"
    assert _flagged(r, "near_duplicate") > set(faults.near_dup)
    with pytest.raises(ConfigError, match="near_dup_threshold=1.5 is not a cosine"):
        choose_threshold(r.graph, r.corpus, 1.5)


def test_ivf_graph_matches_exact(faults: Planted) -> None:
    corpus = open_corpus([faults.train, faults.test])
    exact = build_knn_graph(corpus, 5, method="exact", block_rows=64)
    whole = build_knn_graph(corpus, 5, method="exact", block_rows=10_000)
    ivf = build_knn_graph(corpus, 5, method="ivf", block_rows=64)
    assert np.array_equal(exact.rows, whole.rows)
    assert np.allclose(exact.sims, whole.sims, atol=1e-5)
    assert not (exact.rows == np.arange(len(corpus))[:, None]).any()  # never itself
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(exact.rows, ivf.rows, strict=True)])
    assert recall > 0.9 and ivf.method.startswith("ivf")


def test_confident_learning_rule() -> None:
    p = np.array([[0.9, 0.1], [0.7, 0.3], [0.2, 0.8], [0.3, 0.7], [0.85, 0.15]])
    assert confident_learning(np.array([0, 0, 1, 1, 1]), p).tolist() == [4]
    assert confident_learning(np.array([0, 0, 1, 1, 0]), p).tolist() == []


def test_bad_input(tmp_path: Path, faults: Planted) -> None:
    with pytest.raises(ConfigError, match="at least one feature store"):
        curate([])
    with pytest.raises(ConfigError, match="given twice"):
        curate([faults.train, faults.train])
    other = tmp_path / "other.h5"
    w = StoreWriter.create(other, dim=DIM, fingerprint="other-backbone", backbone={})
    w.append(np.ones((3, DIM)), ["a", "b", "c"], [bytes(16)] * 3)
    w.finalize()
    with pytest.raises(FingerprintMismatchError):
        curate([faults.train, other])
