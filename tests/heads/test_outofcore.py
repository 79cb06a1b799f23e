"""Out-of-core training: batches streamed from the store, peak memory independent of its size."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from embedpipe.errors import ConfigError
from embedpipe.heads import fit_out_of_core, make_head, train_head

from .conftest import make_store

DIM = 64
SMALL, LARGE = 10_000, 40_000


def _blobs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    centers = np.random.default_rng(0).normal(scale=0.5, size=(10, DIM)) + 5.0
    rng = np.random.default_rng(seed + 1)
    y = rng.integers(0, 10, n)
    return (centers[y] + rng.normal(size=(n, DIM))).astype(np.float32), y


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("ooc")
    out = {}
    for n in (SMALL, LARGE):
        X, y = _blobs(n)
        out[n] = make_store(folder / f"s{n}.h5", X, y, name=f"blobs{n}")
    return out


def _peak(fn) -> tuple[object, int]:
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_is_flat_in_the_store_size(stores: dict[int, Path]) -> None:
    Xte, yte = _blobs(4000, seed=1)
    peaks, scores = {}, {}
    for n, path in sorted(stores.items()):
        pipe, peaks[n] = _peak(
            lambda p=path: fit_out_of_core(
                p, "sgd", batch_size=1024, epochs=2, validation_fraction=0.05
            )
        )
        scores[n] = pipe.score(Xte, yte)  # type: ignore[attr-defined]
    store_bytes = LARGE * DIM * 4
    # 4x the rows: the peak grows only by the per-row bookkeeping (labels, masks: ~14 B/row)
    assert peaks[LARGE] < peaks[SMALL] + (LARGE - SMALL) * 16 + (256 << 10), peaks
    assert peaks[LARGE] < 0.2 * store_bytes, peaks
    assert min(scores.values()) > 0.85, scores


def test_out_of_core_sgd_matches_in_memory_sgd(stores: dict[int, Path]) -> None:
    Xte, yte = _blobs(4000, seed=1)
    X, y = _blobs(SMALL)
    in_memory = make_head("sgd", {"max_iter": 5}).fit(X, y).score(Xte, yte)
    streamed = fit_out_of_core(stores[SMALL], "sgd", batch_size=2048, epochs=5).score(Xte, yte)
    assert streamed >= in_memory - 0.02


def test_torch_head_and_pca_out_of_core(stores: dict[int, Path]) -> None:
    Xte, yte = _blobs(2000, seed=1)
    head = train_head(
        stores[SMALL],
        {"name": "torch_linear", "params": {"lr": 3e-3}, "preprocess": "standardize+pca:32"},
        out_of_core=True,
        batch_size=4096,
        epochs=3,
    )
    steps = [name for name, _ in head.estimator.steps]
    assert (
        steps == ["standardize", "pca", "head"]
        and type(head.estimator.named_steps["pca"]).__name__ == "IncrementalPCA"
    )
    assert head.training["out_of_core"] and head.trained_on["n_rows"] == SMALL
    assert head.estimator.score(Xte, yte) > 0.85


def test_heads_without_partial_fit_are_refused(stores: dict[int, Path]) -> None:
    with pytest.raises(ConfigError, match=r"no partial_fit.*'sgd'.*'torch_linear'"):
        fit_out_of_core(stores[SMALL], "logreg")
    with pytest.raises(ConfigError, match="integer number of components"):
        fit_out_of_core(stores[SMALL], {"name": "sgd", "preprocess": "pca:0.9"})
