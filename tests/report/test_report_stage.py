"""The report stage end to end on images: a cached entry, and an HTML page per run."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from PIL import Image

from embedpipe.pipeline import run_pipeline

BACKBONE = {
    "backbone": "torchvision:mobilenet_v2",
    "weights": "none",  # random init: the mechanics need real convolutions, not ImageNet accuracy
    "options": {"resize_size": 32, "crop_size": 32},
    "num_workers": 0,
}
PIPELINE = {
    "name": "digits-report",
    "datasets": {
        "train": {"source": "builtin:digits", "split": "train", "limit": 150},
        "test": {"source": "builtin:digits", "split": "test", "limit": 80},
    },
    "stages": {
        "enc_train": {"kind": "encode", "dataset": "train", "params": BACKBONE},
        "enc_test": {"kind": "encode", "dataset": "test", "params": BACKBONE},
        "ridge": {"kind": "train", "inputs": {"train": "enc_train"}, "params": {"head": "ridge"}},
        "centroid": {
            "kind": "train",
            "inputs": {"train": "enc_train"},
            "params": {"head": "nearest_centroid"},
        },
        "compare": {
            "kind": "evaluate",
            "inputs": {"heads": ["ridge", "centroid"], "test": "enc_test"},
        },
        "report": {
            "kind": "report",
            "inputs": {"evaluate": "compare", "test": "enc_test", "train": "enc_train"},
            "params": {"title": "Digits <with> 'quotes'", "n_examples": 4, "n_neighbors": 3},
        },
    },
}


def test_report_entry_and_per_run_pages(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(PIPELINE))
    kw = {"cache": tmp_path / "cache", "runs_dir": tmp_path / "runs", "progress": False}
    first = run_pipeline(f, **kw)
    entry = first["report"].path
    data = json.loads((entry / "report.json").read_text())
    assert {h["name"] for h in data["heads"]} == {"ridge", "centroid"}
    assert data["best"] in ("ridge", "centroid") and len(data["per_class"]) == 10
    assert (
        len(data["confusion"]["matrix"]) == 10 and sum(map(sum, data["confusion"]["matrix"])) == 80
    )
    assert data["projection"]["n_points"] == 80
    examples = data["neighbours"]["examples"]
    assert len(examples) == 4 and len({e["query"]["label"] for e in examples}) == 4  # one per class
    assert all(
        len(e["neighbours"]) == 3 and e["query"]["thumb"].startswith("thumbs/") for e in examples
    )

    page = first.reports[0]
    assert page == first.run_dir / "report.html"
    html = page.read_text()
    assert "Digits &lt;with&gt; &#39;quotes&#39;" in html
    assert html.count('class="item q"') == 4 and html.count("<img") >= 4 * 4 + 3
    for src in ("confusion.png", "projection.png", "scores.png"):
        with Image.open(page.parent / "report_files" / src) as img:
            assert img.format == "PNG"
    assert "0 from the cache" in html and html.count('class="l miss"') == 6

    second = run_pipeline(f, **kw)
    assert second.executed == [] and second.reports[0] != page
    html2 = second.reports[0].read_text()
    assert "6 from the cache" in html2 and html2.count('class="l hit"') == 6
    thumbs = list((second.reports[0].parent / "report_files" / "thumbs").glob("*.png"))
    shown = {e["query"]["id"] for e in examples} | {
        n["id"] for e in examples for n in e["neighbours"]
    }
    assert len(thumbs) == len(shown)
