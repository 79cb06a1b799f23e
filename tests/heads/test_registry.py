"""Heads by name: the registry, parameters and preprocessing pipelines."""

from __future__ import annotations

import pytest
from sklearn.decomposition import PCA
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer, StandardScaler

from embedpipe.errors import ConfigError
from embedpipe.heads import (
    FaissKNNClassifier,
    HeadSpec,
    TorchHeadClassifier,
    list_heads,
    make_head,
    parse_param,
    parse_preprocess,
)


@pytest.mark.parametrize("name", list_heads())
def test_every_registered_head_builds_and_fits(name: str, mnist) -> None:
    pipe = make_head(name, preprocess="standardize")
    assert isinstance(pipe, Pipeline) and [s for s, _ in pipe.steps] == ["standardize", "head"]
    if name.startswith("torch"):
        pipe.set_params(head__max_epochs=3)
    if name in ("random_forest", "extra_trees"):
        pipe.set_params(head__n_estimators=10)
    if name == "hist_gb":
        pipe.set_params(head__max_iter=5)
    pipe.fit(mnist.Xtr[:200], mnist.ytr[:200])
    assert pipe.score(mnist.Xte[:100], mnist.yte[:100]) > 0.3


def test_preprocessing_steps_and_parameters() -> None:
    pipe = make_head(
        "knn",
        {"n_neighbors": 10, "metric": "l2"},
        preprocess="l2+pca:32+standardize",
        random_state=3,
    )
    steps = dict(pipe.steps)
    assert isinstance(steps["l2"], Normalizer) and isinstance(steps["standardize"], StandardScaler)
    assert (
        isinstance(steps["pca"], PCA)
        and steps["pca"].n_components == 32
        and steps["pca"].random_state == 3
    )
    assert isinstance(steps["head"], FaissKNNClassifier) and steps["head"].n_neighbors == 10
    mlp = make_head("torch_mlp", {"hidden_sizes": [128, 64]}, preprocess=None).named_steps["head"]
    assert (
        isinstance(mlp, TorchHeadClassifier)
        and mlp.hidden_sizes == (128, 64)
        and mlp.random_state == 0
    )
    assert parse_preprocess(["standardise", "pca:0.95"]) == ["standardize", "pca:0.95"]
    assert parse_preprocess("none") == [] and parse_preprocess(None) == []


def test_bad_names_and_parameters_say_what_exists() -> None:
    with pytest.raises(ConfigError, match=r"unknown head 'xgboost'.*logreg.*torch_mlp"):
        make_head("xgboost")
    with pytest.raises(ConfigError, match=r"no parameter\(s\) \['C_value'\].*\bC\b"):
        make_head("logreg", {"C_value": 1.0})
    with pytest.raises(ConfigError, match="unknown preprocessing step 'whiten'"):
        make_head("logreg", preprocess="whiten")
    with pytest.raises(ConfigError, match="bad PCA size"):
        make_head("logreg", preprocess="pca:-3")
    with pytest.raises(ConfigError, match="key=value"):
        parse_param("C")


def test_spec_round_trip_and_label() -> None:
    spec = HeadSpec.coerce({"head": "sgd", "params": {"alpha": 0.001}, "preprocess": "l2"})
    assert spec.label == "sgd[alpha=0.001]+l2"
    d = spec.to_dict()
    assert d == {"name": "sgd", "params": {"alpha": 0.001}, "preprocess": ["l2"], "random_state": 0}
    assert HeadSpec.coerce(d).build().named_steps["head"].alpha == 0.001
    assert parse_param("hidden_sizes=[256, 64]") == ("hidden_sizes", [256, 64])
    assert parse_param("class_weight=balanced") == ("class_weight", "balanced")
    with pytest.raises(ConfigError, match="unknown head spec keys"):
        HeadSpec.coerce({"name": "sgd", "lr": 1})
