"""`embedpipe plan`: a forecast of each stage to build, then recorded against the actual run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from embedpipe.pipeline import run_pipeline
from embedpipe.pipeline.forecast import forecast_pipeline, format_forecast

BACKBONE = {
    "backbone": "torchvision:mobilenet_v2",
    "weights": "none",  # random init: the cost is the same as with trained weights
    "options": {"resize_size": 48, "crop_size": 48},
    "num_workers": 0,
    "batch_size": 32,
}
PIPELINE = {
    "name": "forecast",
    "datasets": {
        "train": {"source": "builtin:digits", "split": "train", "limit": 480},
        "test": {"source": "builtin:digits", "split": "test", "limit": 240},
    },
    "stages": {
        "enc_train": {"kind": "encode", "dataset": "train", "params": BACKBONE},
        "enc_test": {"kind": "encode", "dataset": "test", "params": BACKBONE},
        "ridge": {"kind": "train", "inputs": {"train": "enc_train"}, "params": {"head": "ridge"}},
        "scores": {"kind": "evaluate", "inputs": {"heads": ["ridge"], "test": "enc_test"}},
        "idx": {"kind": "index", "inputs": {"features": "enc_train"}, "params": {"type": "flat"}},
    },
}


@pytest.mark.slow
def test_forecast_within_a_factor_two_of_the_actual_run(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(PIPELINE))
    cache, runs = tmp_path / "cache", tmp_path / "runs"
    fc = forecast_pipeline(f, cache=cache, sizes=(32, 96))
    print(format_forecast(fc))
    assert set(fc.stages) == set(PIPELINE["stages"]) and not any(
        s.cached for s in fc.stages.values()
    )
    assert fc.stages["enc_train"].n_items == 480 and fc.stages["scores"].n_items == 720
    result = run_pipeline(f, cache=cache, runs_dir=runs, progress=False)
    m = json.loads(result.manifest_path.read_text())
    stages = {s["name"]: s for s in m["stages"]}
    for name in ("enc_train", "enc_test"):
        s = stages[name]
        ratio = s["forecast"]["seconds"] / s["actual"]["seconds"]
        disk = s["forecast"]["disk_bytes"] / s["actual"]["disk_bytes"]
        print(
            f"{name}: forecast {s['forecast']['seconds']:.3f} s, actual {s['actual']['seconds']:.3f} s "
            f"(x{ratio:.2f}); disk x{disk:.2f}"
        )
        assert s["forecast_error"]["seconds"] == round(ratio, 3)
        assert 0.5 <= disk <= 2.0
    total = m["forecast"]
    print("whole run:", total)
    assert 0.5 <= total["ratio"] <= 2.0, total
    assert total["seconds"] == round(sum(s["forecast"]["seconds"] for s in m["stages"]), 3)
    # once cached, every stage forecasts zero (and no calibration runs)
    again = forecast_pipeline(f, cache=cache)
    assert all(s.cached and s.seconds == 0 for s in again.stages.values())
    assert again.calibration_seconds < 1.0
