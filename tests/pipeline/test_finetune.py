"""``finetune`` stages: trained on raw items, compared with a linear probe in one evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from embedpipe.pipeline import run_pipeline

SMALL = {"resize_size": 32, "crop_size": 32}
BACKBONE = {"backbone": "torchvision:mobilenet_v2", "weights": "none", "options": SMALL}
PIPELINE = {
    "name": "ft",
    "datasets": {
        "train": {"source": "builtin:digits", "split": "train", "limit": 120},
        "test": {"source": "builtin:digits", "split": "test", "limit": 40},
    },
    "stages": {
        "enc_train": {
            "kind": "encode",
            "dataset": "train",
            "params": {**BACKBONE, "num_workers": 0},
        },
        "enc_test": {"kind": "encode", "dataset": "test", "params": {**BACKBONE, "num_workers": 0}},
        "probe": {"kind": "train", "inputs": {"train": "enc_train"}, "params": {"head": "ridge"}},
        "tuned": {
            "kind": "finetune",
            "datasets": {"train": "train", "test": "test"},
            "params": {
                **BACKBONE,
                "train_blocks": 1,
                "epochs": 2,
                "batch_size": 32,
                "num_workers": 0,
            },
        },
        "compare": {
            "kind": "evaluate",
            "inputs": {"heads": ["probe", "tuned"], "test": "enc_test"},
        },
    },
}


def test_finetune_vs_probe(tmp_path: Path) -> None:
    f = tmp_path / "ft.yaml"
    f.write_text(yaml.safe_dump(PIPELINE))
    kw = {"cache": tmp_path / "cache", "runs_dir": tmp_path / "runs", "progress": False}
    result = run_pipeline(f, **kw)
    tuned = result["tuned"]
    assert tuned.outputs["n_train"] == 120 and tuned.outputs["n_test"] == 40
    assert tuned.outputs["split"]["k"] == 1 and len(tuned.outputs["history"]) == 2
    assert (tuned.path / "model" / "model.safetensors").is_file()
    assert not (tuned.path / "activations.h5").exists()
    ev = json.loads((result["compare"].path / "evaluation.json").read_text())
    assert {r["name"] for r in ev["results"]} == {"probe", "tuned"}
    tuned_row = next(r for r in ev["results"] if r["name"] == "tuned")
    assert tuned_row["head"]["label"].startswith("finetune[top 1 of ")
    assert sum(map(sum, tuned_row["confusion_matrix"])) == 40
    with (
        np.load(result["compare"].path / "predictions" / "tuned.npz") as z,
        np.load(result["compare"].path / "predictions" / "probe.npz") as zp,
    ):
        assert sorted(z["ids"].tolist()) == sorted(zp["ids"].tolist())
        assert z["proba"].shape == (40, 10)
        np.testing.assert_allclose(z["proba"].sum(axis=1), 1.0, rtol=1e-5)
    again = run_pipeline(f, **kw)
    assert again.executed == []
