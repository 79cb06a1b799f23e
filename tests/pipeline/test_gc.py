"""``gc``: remove what no pipeline references; --dry-run lists it; running runs block it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedpipe.errors import ConfigError
from embedpipe.pipeline import Cache, collect_garbage

from .conftest import edit_yaml, run


def test_gc_keeps_referenced_and_removes_the_rest(text_project: Path) -> None:
    cache = Cache(text_project / "cache")
    first = run(text_project)
    edit_yaml(
        text_project / "pipeline.yaml", lambda d: d["stages"]["idx"]["params"].update(metric="l2")
    )
    second = run(text_project)
    old_idx = first["idx"].key
    assert cache.is_complete("index", old_idx)

    dry = collect_garbage(cache.root, dry_run=True)
    assert [(i.kind, i.key) for i in dry.removed] == [("index", old_idx)] and dry.bytes > 0
    assert cache.is_complete("index", old_idx)  # dry run removed nothing

    done = collect_garbage(cache.root)
    assert [(i.kind, i.key) for i in done.removed] == [("index", old_idx)]
    assert not cache.is_complete("index", old_idx)
    assert done.kept == 3 and done.referenced_by == ["texts"]
    assert run(text_project).hits == list(second.stages)


def test_gc_with_pipeline_files_keeps_only_what_they_reference(text_project: Path) -> None:
    run(text_project)
    edit_yaml(
        text_project / "pipeline.yaml",
        lambda d: d["stages"]["enc_test"]["params"]["options"].update(lowercase=False),
    )
    # the edited file no longer references the old enc_test; the record (last run) still does
    by_file = collect_garbage(
        text_project / "cache", [text_project / "pipeline.yaml"], dry_run=True
    )
    assert [i.kind for i in by_file.removed] == ["encode"]
    assert collect_garbage(text_project / "cache", dry_run=True).removed == []


def test_gc_removes_a_dead_runs_partial_folder_and_prunes_the_fingerprint_index(
    text_project: Path,
) -> None:
    cache = Cache(text_project / "cache")
    first = run(text_project)
    partial = cache.tmp_dir("encode", "0" * 32)
    partial.mkdir(parents=True)
    (partial / "features.h5").write_bytes(b"half")
    edit_yaml(
        text_project / "pipeline.yaml",
        lambda d: d["stages"]["enc_test"]["params"]["options"].update(lowercase=False),
    )
    run(text_project)  # the old enc_test entry is unreferenced now
    result = collect_garbage(cache.root)
    assert {(i.what, i.key) for i in result.removed} == {
        ("partial", "0" * 32),
        ("entry", first["enc_test"].key),
    }
    assert not partial.exists()
    for f in (cache.root / "fingerprints").glob("*.json"):
        assert first["enc_test"].key not in json.loads(f.read_text())


def test_gc_refuses_while_a_run_holds_the_cache(text_project: Path) -> None:
    run(text_project)
    cache = Cache(text_project / "cache")
    import subprocess
    import sys
    import time

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from embedpipe.pipeline import Cache\n"
                f"l = Cache({str(cache.root)!r}).gc_lock()\n"
                "with l.read_lock():\n    print('held', flush=True); time.sleep(30)\n"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match="a pipeline run is using cache"):
            collect_garbage(cache.root)
    finally:
        holder.kill()
        holder.wait()
    t0 = time.perf_counter()
    collect_garbage(cache.root)  # the dead holder's lock is gone
    assert time.perf_counter() - t0 < 5


def test_gc_on_a_missing_cache(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        collect_garbage(tmp_path / "nope")


def test_gc_honours_the_pipeline_files_cache(
    text_project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run`, `status` and `gc` share one cache-root rule: a file's `cache:` is used by all."""
    from embedpipe.pipeline import pipeline_status, run_pipeline

    edit_yaml(text_project / "pipeline.yaml", lambda d: d.update(cache="my-cache"))
    f = text_project / "pipeline.yaml"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no ./cache here, and no --cache given anywhere
    monkeypatch.delenv("EMBEDPIPE_CACHE", raising=False)
    first = run_pipeline(f, runs_dir=text_project / "runs", progress=False)
    assert first["idx"].path.is_relative_to(text_project / "my-cache")
    assert all(s.state == "cached" for s in pipeline_status(f))
    edit_yaml(f, lambda d: d["stages"]["idx"]["params"].update(metric="l2"))
    run_pipeline(f, runs_dir=text_project / "runs", progress=False)
    result = collect_garbage(pipelines=[f])
    assert [(i.kind, i.key) for i in result.removed] == [("index", first["idx"].key)]
    assert not (elsewhere / "cache").exists()
