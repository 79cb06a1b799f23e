"""The torch linear / MLP head: determinism, early stopping, class weights, partial_fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.preprocessing import StandardScaler

from embedpipe.heads import TorchHeadClassifier


def _weights(head: TorchHeadClassifier) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in head.model_.parameters()]


def test_same_seed_same_weights_and_global_rng_untouched(mnist) -> None:
    X = StandardScaler().fit_transform(mnist.Xtr)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = TorchHeadClassifier(hidden_sizes=(64,), dropout=0.2, max_epochs=15, random_state=7).fit(
        X, mnist.ytr
    )
    after = torch.rand(3)
    b = TorchHeadClassifier(hidden_sizes=(64,), dropout=0.2, max_epochs=15, random_state=7).fit(
        X, mnist.ytr
    )
    c = TorchHeadClassifier(hidden_sizes=(64,), dropout=0.2, max_epochs=15, random_state=8).fit(
        X, mnist.ytr
    )
    assert torch.equal(before, after)  # fit drew nothing from the global generator
    for wa, wb in zip(_weights(a), _weights(b), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(_weights(a)[0], _weights(c)[0])


def test_linear_head_matches_logistic_regression_on_minilm_features(rotten) -> None:
    scaler = StandardScaler().fit(rotten.Xtr)
    Xtr, Xte = scaler.transform(rotten.Xtr), scaler.transform(rotten.Xte)
    ref = LogisticRegression(max_iter=2000).fit(Xtr, rotten.ytr).score(Xte, rotten.yte)
    head = TorchHeadClassifier(weight_decay=1e-2).fit(Xtr, rotten.ytr)
    assert head.score(Xte, rotten.yte) >= ref - 0.01
    proba = head.predict_proba(Xte)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert head.decision_function(Xte).shape == (Xte.shape[0],)  # binary: one margin


def test_early_stopping_keeps_the_best_validation_epoch(mnist) -> None:
    X = StandardScaler().fit_transform(mnist.Xtr)
    head = TorchHeadClassifier(hidden_sizes=(256,), lr=3e-3, max_epochs=200, patience=5).fit(
        X, mnist.ytr
    )
    curve = head.validation_loss_curve_
    assert head.n_iter_ < 200  # it stopped
    assert head.n_iter_ == head.best_epoch_ + 5
    assert curve[head.best_epoch_ - 1] == pytest.approx(min(curve))


def test_class_weights_shift_predictions_to_the_heavy_class(mnist) -> None:
    X = StandardScaler().fit_transform(mnist.Xtr)
    y = (mnist.ytr == 3).astype(int)  # 10% positives
    plain = TorchHeadClassifier(max_epochs=30, early_stopping=False).fit(X, y)
    weighted = TorchHeadClassifier(max_epochs=30, early_stopping=False, class_weight={1: 20.0}).fit(
        X, y
    )
    assert weighted.predict(X).sum() > plain.predict(X).sum()
    balanced = TorchHeadClassifier(
        max_epochs=30, early_stopping=False, class_weight="balanced"
    ).fit(X, y)
    assert balanced.predict(X).sum() > plain.predict(X).sum()
    with pytest.raises(ValueError, match="not in the labels"):
        TorchHeadClassifier(class_weight={7: 2.0}).fit(X, y)


def test_partial_fit_learns_batch_by_batch(mnist) -> None:
    X = StandardScaler().fit_transform(mnist.Xtr)
    head = TorchHeadClassifier(lr=3e-3, batch_size=64)
    with pytest.raises(ValueError, match="classes must be passed"):
        head.partial_fit(X[:100], mnist.ytr[:100])
    for _ in range(5):
        for s in range(0, 600, 100):
            head.partial_fit(X[s : s + 100], mnist.ytr[s : s + 100], classes=np.arange(10))
    assert head.n_iter_ == 30
    assert head.score(X, mnist.ytr) > 0.85
    with pytest.raises(ValueError, match="not in classes"):
        head.partial_fit(X[:5], np.full(5, 11))


def test_works_inside_grid_search(mnist) -> None:
    X = StandardScaler().fit_transform(mnist.Xtr[:300])
    grid = GridSearchCV(
        TorchHeadClassifier(max_epochs=10), {"weight_decay": [1e-4, 1e-1]}, cv=2
    ).fit(X, mnist.ytr[:300])
    assert grid.best_params_["weight_decay"] in (1e-4, 1e-1)
