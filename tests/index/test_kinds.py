"""The index-type registry: every kind plans, builds, tunes and searches; a new kind is one
registered class; the kNN head builds its FAISS index through the same registry."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
import typer
from sklearn.datasets import make_blobs
from typer.testing import CliRunner

from embedpipe.cli.index_cmd import register
from embedpipe.errors import NotFoundError
from embedpipe.heads import FaissKNNClassifier
from embedpipe.index import build_index
from embedpipe.index.kinds import (
    INDEX_KINDS,
    INDEX_TYPES,
    FlatType,
    kinds_help,
    register_index_type,
)
from embedpipe.index.params import hnsw_of
from embedpipe.index.plan import plan_index

from .conftest import brute_force_rows, recall_of, write_store


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    both, _ = make_blobs(2600, n_features=32, centers=30, random_state=7)
    X, Q = both[:2500].astype(np.float32), both[2500:].astype(np.float32)  # fresh queries
    return write_store(tmp_path_factory.mktemp("kinds") / "c.h5", X), X, Q


@pytest.mark.parametrize("name", sorted(INDEX_TYPES))
def test_every_registered_kind_builds_and_searches(clustered, name):
    path, X, Q = clustered
    kind = INDEX_TYPES.get(name)
    rerank = 200 if kind.compressed else None  # compressed codes alone cap the recall
    index = build_index(path, name, target_recall=0.9, n_tune_queries=200, rerank=rerank)
    assert index.meta.kind == name and index.meta.factory == kind.plan(len(X), 32).factory
    assert len(index) == len(X)
    if kind.search_param is not None:
        assert index.meta.tuning["param"] == kind.search_param.name
        assert index.search_params == {kind.search_param.name: index.meta.tuning["value"]}
    else:
        assert index.meta.tuning is None
    assert index.rerank == (rerank if kind.compressed else kind.default_rerank)
    _, found = index.search_arrays(Q, 10)
    assert recall_of(found, brute_force_rows(X, Q, 10)) >= 0.85


def test_kinds_help_and_the_cli_list_the_registry():
    assert list(INDEX_KINDS)[0] == "auto" and set(INDEX_TYPES) <= set(INDEX_KINDS)
    assert all(name in kinds_help() for name in INDEX_TYPES)
    app = typer.Typer()
    register(app)
    r = CliRunner().invoke(app, ["index", "--help"], env={"COLUMNS": "200"})
    assert "binary" in r.output and "ivfpq" in r.output and "factory string" in r.output


def test_a_new_kind_is_one_registered_class(clustered, tmp_path):
    path, X, Q = clustered

    @register_index_type
    class PCAFlat(FlatType):
        name = "flat-test"
        description = "exact search, registered by a test"

        def factory(self, n, dim, **options):
            return "PCA16,Flat"

        def estimate(self, n, dim, **options):
            return n * 16 * 4

        def n_train(self, n, dim, **options):
            return min(n, 1000)

    try:
        assert "flat-test" in INDEX_KINDS and "flat-test" in kinds_help()
        assert plan_index(1000, 32, "flat-test").factory == "PCA16,Flat"
        app = typer.Typer()
        register(app)
        r = CliRunner().invoke(
            app, ["index", str(path), "-o", str(tmp_path / "x"), "--kind", "flat-test", "-q"]
        )
        assert r.exit_code == 0, r.output
        assert "PCA16,Flat (flat-test" in r.output
    finally:
        INDEX_TYPES.unregister("flat-test")
    with pytest.raises(NotFoundError, match="did you mean 'ivf'"):
        INDEX_TYPES.get("ivff")


def test_the_knn_head_builds_through_the_registry(monkeypatch):
    """FaissKNNClassifier asks the registry for its index: a changed kind changes the head."""
    X, y = make_blobs(600, n_features=8, centers=3, random_state=0)
    knn = FaissKNNClassifier(n_neighbors=3, index="hnsw", ef_search=40).fit(X, y)
    hnsw = hnsw_of(knn.index_)
    assert hnsw.hnsw.efConstruction == 128 and hnsw.hnsw.efSearch == 40  # the HNSW type's build
    seen = []
    hnsw_type = INDEX_TYPES.get("hnsw")
    original = type(hnsw_type).prepare

    def spy(self, index):
        seen.append(faiss.downcast_index(index))
        original(self, index)

    monkeypatch.setattr(type(hnsw_type), "prepare", spy)
    FaissKNNClassifier(n_neighbors=3, index="hnsw").fit(X, y)
    assert len(seen) == 1
    ivf = FaissKNNClassifier(n_neighbors=3, index="ivf", nlist=4, nprobe=9).fit(X, y)
    assert faiss.extract_index_ivf(ivf.index_).nlist == 4 and ivf.index_.nprobe == 4
