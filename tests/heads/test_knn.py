"""FaissKNNClassifier against scikit-learn's brute-force KNeighborsClassifier on real features."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from embedpipe.heads import FaissKNNClassifier


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_flat_index_equals_sklearn_brute_force_on_minilm_features(
    rotten, metric: str, weights: str
) -> None:
    ours = FaissKNNClassifier(n_neighbors=7, metric=metric, weights=weights).fit(
        rotten.Xtr, rotten.ytr
    )
    ref = KNeighborsClassifier(
        7,
        metric="cosine" if metric == "cosine" else "euclidean",
        weights=weights,
        algorithm="brute",
    )
    ref.fit(rotten.Xtr, rotten.ytr)
    d_ours, i_ours = ours.kneighbors(rotten.Xte)
    d_ref, i_ref = ref.kneighbors(rotten.Xte)
    np.testing.assert_allclose(d_ours, d_ref, atol=2e-5)
    # neighbour lists agree except where two training rows are (nearly) equally far
    d_more, _ = ref.kneighbors(rotten.Xte, 8)
    gaps = np.diff(d_more, axis=1).min(axis=1)
    clear = gaps > 1e-5
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(i_ours[clear], i_ref[clear])
    np.testing.assert_array_equal(ours.predict(rotten.Xte)[clear], ref.predict(rotten.Xte)[clear])
    np.testing.assert_allclose(
        ours.predict_proba(rotten.Xte)[clear], ref.predict_proba(rotten.Xte)[clear], atol=1e-4
    )
    assert abs(ours.score(rotten.Xte, rotten.yte) - ref.score(rotten.Xte, rotten.yte)) <= 0.005


def test_kneighbors_of_the_training_rows_exclude_themselves(rotten) -> None:
    X = rotten.Xtr[:300]
    ours = FaissKNNClassifier(n_neighbors=4).fit(X, rotten.ytr[:300])
    ref = KNeighborsClassifier(4, metric="cosine", algorithm="brute").fit(X, rotten.ytr[:300])
    ind = ours.kneighbors(return_distance=False)
    assert ind.shape == (300, 4)
    assert not (ind == np.arange(300)[:, None]).any()
    assert (ind == ref.kneighbors(return_distance=False)).mean() > 0.99


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_approximate_indexes_stay_close_to_exact(mnist, index: str) -> None:
    exact = FaissKNNClassifier(n_neighbors=5).fit(mnist.Xtr, mnist.ytr)
    approx = FaissKNNClassifier(n_neighbors=5, index=index, nprobe=4).fit(mnist.Xtr, mnist.ytr)
    agree = (exact.predict(mnist.Xte) == approx.predict(mnist.Xte)).mean()
    assert agree > 0.95
    assert abs(exact.score(mnist.Xte, mnist.yte) - approx.score(mnist.Xte, mnist.yte)) < 0.03


def test_pickle_round_trip_keeps_the_index(mnist) -> None:
    knn = FaissKNNClassifier(n_neighbors=3, index="ivf", nprobe=2).fit(mnist.Xtr, mnist.ytr)
    clone = pickle.loads(pickle.dumps(knn))
    assert clone.index_.nprobe == knn.index_.nprobe
    np.testing.assert_array_equal(clone.predict(mnist.Xte), knn.predict(mnist.Xte))


def test_string_labels_and_bad_parameters() -> None:
    X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    y = np.array(["cat", "dog"] * 10)
    knn = FaissKNNClassifier(n_neighbors=3).fit(X, y)
    assert set(knn.predict(X)) <= {"cat", "dog"}
    with pytest.raises(ValueError, match="metric='manhattan'"):
        FaissKNNClassifier(metric="manhattan").fit(X, y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_neighbors <= n_samples_fit"):
        FaissKNNClassifier(n_neighbors=50).fit(X, y).predict(X)
