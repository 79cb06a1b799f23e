"""Running pipelines: what re-runs after a change, item-level reuse, manifests, --only/--force."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import embedpipe.backbones
import embedpipe.encoding
from embedpipe.errors import ConfigError
from embedpipe.pipeline import Cache, pipeline_status
from embedpipe.store import FeatureStore

from .conftest import edit_yaml, run, write_csv

ALL = ["enc_train", "enc_test", "idx"]


def test_first_run_builds_everything_then_all_cached(text_project: Path) -> None:
    first = run(text_project)
    assert first.executed == ALL and first.hits == []
    assert first["enc_train"].outputs["n_encoded"] == 300
    second = run(text_project)
    assert second.hits == ALL and second.executed == []
    assert {n: s.key for n, s in first.stages.items()} == {
        n: s.key for n, s in second.stages.items()
    }
    # the cached entries are complete and hold what the first run made
    with FeatureStore(second["enc_train"].path / "features.h5") as fs:
        assert fs.complete and len(fs) == 300


def test_manifest_records_keys_hits_timings_versions_seeds(text_project: Path) -> None:
    run(text_project)
    result = run(text_project)
    m = json.loads(result.manifest_path.read_text())
    assert m["pipeline"] == "texts" and m["status"] == "ok" and m["seed"] == 0
    assert [s["name"] for s in m["stages"]] == ALL
    assert all(s["status"] == "hit" and len(s["key"]) == 32 and s["seed"] == 0 for s in m["stages"])
    assert m["hits"] == 3 and m["misses"] == 0
    assert {"python", "numpy", "h5py"} <= set(m["versions"])
    assert m["datasets"]["train"]["digest"] and m["file_digest"]
    assert m["git"] is None  # tmp_path is not in a git work tree
    assert result.manifest_path.parent.parent == text_project / "runs" / "texts"


def test_unchanged_rerun_loads_no_model_and_encodes_nothing(
    text_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(text_project)
    calls = {"load_backbone": 0, "encode": 0}
    real_load, real_encode = embedpipe.backbones.load_backbone, embedpipe.encoding.encode

    def load(*a, **k):
        calls["load_backbone"] += 1
        return real_load(*a, **k)

    def enc(*a, **k):
        calls["encode"] += 1
        return real_encode(*a, **k)

    monkeypatch.setattr(embedpipe.backbones, "load_backbone", load)
    monkeypatch.setattr(embedpipe.encoding, "encode", enc)
    result = run(text_project)
    assert result.hits == ALL
    assert calls == {"load_backbone": 0, "encode": 0}
    # the counters do count: a forced re-run of one encode goes through them once
    run(text_project, force=["enc_test"])
    assert calls == {"load_backbone": 1, "encode": 1}


def test_cached_rerun_in_a_fresh_process_never_imports_torch(text_project: Path) -> None:
    run(text_project)
    code = (
        "import sys; from embedpipe.pipeline import run_pipeline\n"
        f"r = run_pipeline({str(text_project / 'pipeline.yaml')!r}, cache={str(text_project / 'cache')!r}, "
        f"runs_dir={str(text_project / 'runs')!r}, progress=False)\n"
        "print(len(r.hits), 'torch' in sys.modules, 'sklearn' in sys.modules, 'faiss' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["3", "False", "False", "False"]


def test_index_parameter_change_reruns_only_the_index(text_project: Path) -> None:
    run(text_project)
    edit_yaml(
        text_project / "pipeline.yaml", lambda d: d["stages"]["idx"]["params"].update(metric="l2")
    )
    result = run(text_project)
    assert result.executed == ["idx"] and result.hits == ["enc_train", "enc_test"]


def test_backbone_change_reruns_everything_downstream(text_project: Path) -> None:
    run(text_project)

    def change(d: dict) -> None:
        for s in ("enc_train", "enc_test"):
            d["stages"][s]["params"]["options"]["normalize"] = False

    edit_yaml(text_project / "pipeline.yaml", change)
    result = run(text_project)
    assert result.executed == ALL
    # a different backbone fingerprint: nothing could be reused
    assert (
        result["enc_train"].outputs["n_reused"] == 0
        and result["enc_train"].outputs["n_encoded"] == 300
    )


def test_run_only_options_do_not_change_keys(text_project: Path) -> None:
    run(text_project)
    edit_yaml(
        text_project / "pipeline.yaml",
        lambda d: d["stages"]["enc_train"]["params"].update(batch_size=7),
    )
    assert run(text_project).executed == []


def test_grown_dataset_encodes_only_new_items(text_project: Path, snippets: list) -> None:
    first = run(text_project)
    write_csv(text_project / "train.csv", snippets[:300] + snippets[400:430])  # 30 new snippets
    result = run(text_project)
    assert result.executed == ["enc_train", "idx"] and result.hits == ["enc_test"]
    out = result["enc_train"].outputs
    assert (out["n_reused"], out["n_encoded"], out["n_items"]) == (300, 30, 330)
    # reused rows are bit-identical to the earlier store's
    with (
        FeatureStore(first["enc_train"].path / "features.h5") as old,
        FeatureStore(result["enc_train"].path / "features.h5") as new,
    ):
        rows = new.index_of(old.ids.tolist())
        np.testing.assert_array_equal(new.read(rows), old.features)
    fp = out["fingerprint"]
    keys = json.loads((text_project / "cache" / "fingerprints" / f"{fp}.json").read_text())
    assert set(keys) == {first["enc_train"].key, first["enc_test"].key, result["enc_train"].key}


def test_moved_project_keeps_its_cache_hits(text_project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "shared-cache"
    run(text_project, cache=outside)
    run(text_project)  # and a cache inside the project
    moved = tmp_path / "elsewhere" / "renamed-project"
    moved.parent.mkdir()
    shutil.move(str(text_project), str(moved))
    assert run(moved).hits == ALL
    assert run(moved, cache=outside).hits == ALL


def test_only_runs_the_stage_and_its_upstream(text_project: Path) -> None:
    result = run(text_project, only=["idx"])
    assert list(result.stages) == ["enc_train", "idx"] and result.executed == ["enc_train", "idx"]
    state = {
        s.name: (s.state, s.reasons)
        for s in pipeline_status(text_project / "pipeline.yaml", text_project / "cache")
    }
    assert state["enc_test"] == ("stale", ["never run on this cache"])
    assert state["idx"] == ("cached", [])


def test_force_replaces_one_entry(text_project: Path) -> None:
    first = run(text_project)
    result = run(text_project, force=["idx"])
    assert result.executed == ["idx"] and result["idx"].status == "forced"
    assert result["idx"].key == first["idx"].key and Cache(text_project / "cache").is_complete(
        "index", first["idx"].key
    )
    with pytest.raises(ConfigError, match="no stage 'nope'"):
        run(text_project, force=["nope"])
    with pytest.raises(ConfigError, match="not part of this run"):
        run(text_project, only=["enc_test"], force=["idx"])


def test_failed_stage_leaves_no_entry_and_a_failed_manifest(text_project: Path) -> None:
    edit_yaml(
        text_project / "pipeline.yaml",
        lambda d: d["stages"]["idx"]["params"].update(type="no-such-index"),
    )
    with pytest.raises(ConfigError):
        run(text_project)
    cache = Cache(text_project / "cache")
    assert [k for k, _, _ in cache.entries()] == ["encode", "encode"]
    manifest = json.loads(
        max((text_project / "runs" / "texts").glob("*/manifest.json")).read_text()
    )
    assert manifest["status"] == "failed"
    assert [s["status"] for s in manifest["stages"]] == ["miss", "miss", "failed"]
    assert not any((text_project / "cache" / "tmp").iterdir())  # non-resumable temp folder wiped


def test_pipeline_built_in_python_runs_like_the_file(text_project: Path) -> None:
    from embedpipe.pipeline import Pipeline

    from_file = run(text_project)
    p = Pipeline("texts", base_dir=text_project)
    table = {"id_column": "id", "text_column": "text", "label_column": "label"}
    p.dataset("train", "train.csv", **table)
    p.dataset("test", "test.csv", **table)
    backbone = {"backbone": "word-vectors:vectors/v.txt", "options": {"normalize": True}}
    enc = p.stage("enc_train", "encode", dataset="train", **backbone)
    p.stage("enc_test", "encode", dataset="test", **backbone)
    p.stage("idx", "index", inputs={"features": enc}, type="flat")
    result = p.run(cache=text_project / "cache", runs_dir=text_project / "runs", progress=False)
    assert result.hits == ALL
    assert {n: s.key for n, s in result.stages.items()} == {
        n: s.key for n, s in from_file.stages.items()
    }


def test_manifest_git_commit_of_a_tracked_file() -> None:
    from embedpipe.pipeline.manifest import git_info

    repo_file = Path(__file__).resolve().parents[2] / "pyproject.toml"
    info = git_info(repo_file)
    if info is None:
        pytest.skip("not running from a git checkout")
    assert len(info["head"]) == 40 and info["tracked"] is True
    assert info["file_commit"] is not None and len(info["file_commit"]) == 40
