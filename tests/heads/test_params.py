"""Head parameters validated with scikit-learn's own constraints before anything runs; the head
registry (decorator, lazy factories, listing without heavy imports)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedpipe.errors import ConfigError, NotFoundError
from embedpipe.heads import (
    HEADS,
    HeadSpec,
    describe_heads,
    make_head,
    register_head,
    validate_head_params,
)

from .conftest import make_store


@pytest.mark.parametrize(
    ("head", "params", "message"),
    [
        (
            "knn",
            {"n_neighbors": "fifteen"},
            "head 'knn': n_neighbors='fifteen' is not allowed; n_neighbors must be an int in the "
            "range [1, inf).",
        ),
        (
            "logreg",
            {"C": -1},
            "head 'logreg': C=-1 is not allowed; C must be a float in the range (0.0, inf].",
        ),
        (
            "torch_mlp",
            {"dropout": 1.5},
            "head 'torch_mlp': dropout=1.5 is not allowed; dropout must be a float in the range "
            "[0.0, 1.0).",
        ),
        (
            "random_forest",
            {"n_estimator": 10},
            "head 'random_forest' has no parameter(s) ['n_estimator'] (did you mean "
            "'n_estimators'?)",
        ),
    ],
)
def test_bad_values_are_one_line_naming_head_key_value_and_what_is_allowed(
    head: str, params: dict, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        validate_head_params(head, params)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="is not allowed|has no parameter"):
        HeadSpec(head, params).build()  # building checks the same way (pipeline files)


def test_good_params_come_back_with_defaults() -> None:
    got = validate_head_params("torch_mlp", {"hidden_sizes": [64, 32], "lr": 0.01})
    assert got["hidden_sizes"] == (64, 32) and got["dropout"] == 0.1 and got["lr"] == 0.01
    assert validate_head_params("sgd", {})["loss"] == "log_loss"


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run the real ``embedpipe`` entry point in-process: (exit code, stderr)."""
    from embedpipe.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0), capsys.readouterr().err


def test_train_with_a_bad_param_is_one_line_and_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = np.random.default_rng(0)
    store = make_store(tmp_path / "s.h5", rng.normal(size=(40, 4)), np.arange(40) % 2)
    for param, expected in (
        ("n_neighbors=fifteen", "error: head 'knn': n_neighbors='fifteen' is not allowed;"),
        ("C=-1", "error: head 'logreg': C=-1 is not allowed; C must be a float"),
    ):
        head = "knn" if "neighbors" in param else "logreg"
        out = tmp_path / f"{head}.skops"
        code, err = _cli(
            ["train", "-s", str(store), "--head", head, "-p", param, "-o", str(out)], capsys
        )
        lines = [x for x in err.splitlines() if x.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith(expected), err
        assert not out.exists()
    code, err = _cli(
        ["evaluate", "-s", str(store), "--head", "{name: knn, params: {weights: far}}"], capsys
    )
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "head 'knn': weights='far' is not allowed; weights must be a str among" in err


def test_register_head_decorator_lazy_factories_and_unknown_names() -> None:
    from sklearn.naive_bayes import GaussianNB

    @register_head("test_gnb", description="Gaussian naive Bayes", defaults={"var_smoothing": 1e-3})
    class TestGNB(GaussianNB):
        pass

    try:
        assert describe_heads()["test_gnb"] == "Gaussian naive Bayes"
        est = make_head("test_gnb", preprocess=None)[-1]
        assert isinstance(est, TestGNB) and est.var_smoothing == 1e-3
        with pytest.raises(ConfigError, match="already registered"):
            register_head("test_gnb", "sklearn.naive_bayes:GaussianNB", "again")
    finally:
        HEADS.unregister("test_gnb")
    with pytest.raises(NotFoundError, match=r"unknown head 'lgreg'; did you mean 'logreg'\?"):
        make_head("lgreg")


def test_listing_heads_imports_neither_torch_nor_sklearn() -> None:
    code = (
        "import json, sys; from embedpipe.heads import describe_heads; d = describe_heads(); "
        "print(json.dumps([sorted(d), [m for m in ('torch', 'sklearn', 'faiss') if m in sys.modules]]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    names, heavy = json.loads(r.stdout)
    assert {"logreg", "knn", "torch_mlp", "zero_shot"} <= set(names) and heavy == []
