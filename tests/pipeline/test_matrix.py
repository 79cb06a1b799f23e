"""Sweeps: `matrix:` expansion and naming, branch inputs, content keys, the compare stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import f1_score

from embedpipe.errors import ConfigError
from embedpipe.pipeline import Pipeline, load_pipeline

from .conftest import edit_yaml, run, text_pipeline, write_yaml


def _sweep(normalize: list[bool]) -> dict[str, Any]:
    data = text_pipeline("vectors/v.txt")
    for s in ("enc_train", "enc_test"):
        data["stages"][s]["matrix"] = {"options.normalize": list(normalize)}
    data["stages"].update(
        {
            "head": {
                "kind": "train",
                "inputs": {"train": "enc_train"},
                "params": {"head": "logreg"},
                "matrix": {"head": ["logreg", "nearest_centroid"]},
            },
            "scores": {"kind": "evaluate", "inputs": {"heads": "head", "test": "enc_test"}},
            "board": {"kind": "compare", "inputs": {"evaluate": "scores"}},
        }
    )
    return data


def test_expansion_names_inputs_and_branch_agreement() -> None:
    data = {
        "datasets": {"tr": "builtin:digits?split=train", "te": "builtin:digits?split=test"},
        "stages": {
            "embed": {
                "kind": "encode",
                "dataset": "tr",
                "params": {"backbone": "x"},
                "matrix": {
                    "backbone": ["torchvision:mobilenet_v2", "torchvision:resnet18"],
                    "layer": ["a.1", "b.2"],
                },
            },
            "test": {
                "kind": "encode",
                "dataset": "te",
                "params": {"backbone": "x"},
                "matrix": {
                    "backbone": ["torchvision:mobilenet_v2", "torchvision:resnet18"],
                    "layer": ["a.1", "b.2"],
                },
            },
            "head": {
                "kind": "train",
                "inputs": {"train": "embed"},
                "params": {"head": "logreg"},
                "matrix": {"options.C": [0.5, 2]},
            },
            "ev": {"kind": "evaluate", "inputs": {"heads": "head", "test": "test"}},
            "board": {"kind": "compare", "inputs": {"evaluate": "ev"}},
            "pinned": {
                "kind": "index",
                "inputs": {"features": "embed[resnet18,layer=b.2]"},
            },
        },
    }
    p = Pipeline.from_dict(data)
    st = p.stages
    embeds = [n for n in st if st[n].base == "embed"]
    assert embeds == [
        "embed[mobilenet_v2,layer=a.1]",
        "embed[mobilenet_v2,layer=b.2]",
        "embed[resnet18,layer=a.1]",
        "embed[resnet18,layer=b.2]",
    ]
    e = st["embed[resnet18,layer=b.2]"]
    assert e.params.backbone == "torchvision:resnet18" and e.params.layer == "b.2"
    h = st["head[mobilenet_v2,layer=a.1,C=2]"]
    assert h.inputs == {"train": ["embed[mobilenet_v2,layer=a.1]"]}
    assert h.params.options == {"C": 2}
    assert len([n for n in st if st[n].base == "head"]) == 8
    # one evaluate per backbone/layer, holding exactly that branch's heads and test features
    ev = st["ev[resnet18,layer=a.1]"]
    assert ev.inputs["test"] == ["test[resnet18,layer=a.1]"]
    assert ev.inputs["heads"] == ["head[resnet18,layer=a.1,C=0.5]", "head[resnet18,layer=a.1,C=2]"]
    # the compare stage reads every branch, and a branch named in full is read alone
    assert len(st["board"].inputs["evaluate"]) == 4 and st["board"].axes == {}
    assert st["pinned"].inputs == {"features": ["embed[resnet18,layer=b.2]"]}
    # names are deterministic: a second load gives the same stages in the same order
    assert list(Pipeline.from_dict(data).stages) == list(st)
    # a matrix stage's name selects all its branches
    assert p.branches("head") == [n for n in st if st[n].base == "head"]


def test_bad_matrix_is_a_one_line_error(tmp_path: Path) -> None:
    data = _sweep([True])
    data["stages"]["head"]["matrix"] = {"head": []}
    f = write_yaml(tmp_path / "p.yaml", data)
    with pytest.raises(ConfigError) as e:
        load_pipeline(f)
    msg = str(e.value)
    assert "p.yaml line" in msg and "stage 'head'" in msg and "matrix key 'head'" in msg
    assert "\n" not in msg


def test_adding_a_value_runs_only_the_new_branches(text_project: Path) -> None:
    f = write_yaml(text_project / "pipeline.yaml", _sweep([True]))
    first = run(text_project)
    # 2 encodes, the index, 2 heads, the evaluate stage, the compare stage
    assert len(first.executed) == len(first.stages) == 7

    def add_value(d: dict[str, Any]) -> None:
        for s in ("enc_train", "enc_test"):
            d["stages"][s]["matrix"]["options.normalize"] = [True, False]

    edit_yaml(f, add_value)
    second = run(text_project)
    new = {n for n in second.stages if "normalize=false" in n}
    print("ran:", second.executed)
    assert set(second.executed) == new | {"board"}
    assert sorted(second.hits) == sorted(first.stages.keys() - {"board"})
    assert len(new) == 6  # the new value's 2 encodes, index, 2 heads and evaluate stage
    # dag and status show the expansion
    p = load_pipeline(f)
    dag = p.dag()
    assert "matrix enc_train: 2 branches over options.normalize (2: true, false)" in dag
    assert "enc_train[normalize=false]" in dag
    assert [s.name for s in p.status(cache=text_project / "cache")] == p.order()


def test_compare_leaderboard_equals_figures_computed_by_hand(text_project: Path) -> None:
    write_yaml(text_project / "pipeline.yaml", _sweep([True, False]))
    result = run(text_project)
    board = result["board"]
    data = json.loads((board.path / "leaderboard.json").read_text())
    rows = data["rows"]
    assert len(rows) == 2  # one per feature extractor (normalize true / false)
    for row in rows:
        norm = "true" if "normalize=true" in row["group"] else "false"
        scores = {}
        for head in ("logreg", "nearest_centroid"):
            name = f"head[normalize={norm},head={head}]"
            with np.load(board.path / "predictions" / f"{name}.npz") as z:
                y, p = z["y_true"], z["y_pred"]
            scores[name] = ((y == p).mean(), f1_score(y, p, average="macro"))
        best = max(scores, key=lambda n: scores[n][0])
        assert row["info"]["stage"] == best and row["head"].startswith(best.split("=")[-1][:-1])
        assert row["accuracy"] == pytest.approx(scores[best][0])
        assert row["macro_f1"] == pytest.approx(scores[best][1])
        lo, hi = row["accuracy_ci"]
        assert lo <= row["accuracy"] <= hi and hi - lo < 0.3
        enc = result[f"enc_train[normalize={norm}]"]
        assert row["dim"] == enc.outputs["dim"] == 24
        assert row["items_per_s"] == pytest.approx(enc.outputs["items_per_s"])
        assert row["store_bytes"] > 0 and row["heads_tried"] == 2
    assert any(r["pareto"] for r in rows)
    assert (board.path / "leaderboard.md").read_text().startswith("| features | best head |")
