"""Heads in pipelines: what a head's parameter change re-runs, and bit-identical predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedpipe.errors import ConfigError
from embedpipe.pipeline import Cache

from .conftest import edit_yaml, run, text_pipeline, write_yaml

HEADS = {
    "logreg": {
        "kind": "train",
        "inputs": {"train": "enc_train"},
        "params": {"head": "logreg", "options": {"C": 1.0}},
    },
    "knn": {
        "kind": "train",
        "inputs": {"train": "enc_train"},
        "params": {"head": "knn", "preprocess": "none", "options": {"n_neighbors": 7}},
    },
    "linear": {
        "kind": "train",
        "inputs": {"train": "enc_train"},
        "params": {"head": "torch_linear", "options": {"max_epochs": 8}},
    },
    "compare": {
        "kind": "evaluate",
        "inputs": {"heads": ["logreg", "knn", "linear"], "test": "enc_test"},
    },
    "report": {
        "kind": "report",
        "inputs": {"evaluate": "compare", "test": "enc_test", "train": "enc_train", "index": "idx"},
        "params": {"n_examples": 3},
    },
}


@pytest.fixture
def heads_project(text_project: Path) -> Path:
    write_yaml(text_project / "pipeline.yaml", text_pipeline("vectors/v.txt", extra_stages=HEADS))
    return text_project


def test_head_parameter_change_reruns_only_that_head_and_downstream(heads_project: Path) -> None:
    first = run(heads_project)
    assert len(first.executed) == 8 and first.reports and first.reports[0].is_file()
    edit_yaml(
        heads_project / "pipeline.yaml",
        lambda d: d["stages"]["logreg"]["params"]["options"].update(C=0.1),
    )
    result = run(heads_project)
    assert result.executed == ["logreg", "compare", "report"]
    assert result.hits == ["enc_train", "enc_test", "idx", "knn", "linear"]
    assert result["compare"].outputs["scores"]["knn"] == first["compare"].outputs["scores"]["knn"]


def test_same_pipeline_twice_from_empty_caches_gives_bit_identical_predictions(
    heads_project: Path, tmp_path: Path
) -> None:
    a = run(heads_project, cache=tmp_path / "cache-a", only=["compare"])
    b = run(heads_project, cache=tmp_path / "cache-b", only=["compare"])
    assert (
        a.executed == b.executed == ["enc_train", "enc_test", "logreg", "knn", "linear", "compare"]
    )
    assert {n: s.key for n, s in a.stages.items()} == {n: s.key for n, s in b.stages.items()}
    for head in ("logreg", "knn", "linear"):
        rel = a["compare"].outputs["predictions"][head]
        with np.load(a["compare"].path / rel) as pa, np.load(b["compare"].path / rel) as pb:
            assert set(pa.files) == set(pb.files) and "proba" in pa.files
            for name in pa.files:
                np.testing.assert_array_equal(pa[name], pb[name], err_msg=f"{head}: {name}")
            assert len(pa["y_pred"]) == 100


def test_bad_head_parameter_fails_before_anything_runs(heads_project: Path) -> None:
    edit_yaml(
        heads_project / "pipeline.yaml",
        lambda d: d["stages"]["knn"]["params"]["options"].update(n_neighbours=3),
    )
    with pytest.raises(
        ConfigError,
        match=r"stage 'knn' \(train\): head 'knn' has no parameter\(s\) \['n_neighbours'\]",
    ):
        run(heads_project)
    assert list(Cache(heads_project / "cache").entries()) == []
