"""The pipeline commands through typer: run, status, dag, gc."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from embedpipe.cli import pipeline_cmd

from .conftest import edit_yaml


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    pipeline_cmd.register(app)
    return app


def _invoke(app: typer.Typer, *args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_run_status_dag_gc(cli: typer.Typer, text_project: Path) -> None:
    f, cache, runs = text_project / "pipeline.yaml", text_project / "cache", text_project / "runs"
    out = _invoke(cli, "dag", f)
    assert "pipeline texts: 3 stages, 2 datasets" in out
    assert "idx" in out and "<- features=enc_train" in out
    assert 'digraph "texts"' in _invoke(cli, "dag", f, "--dot")

    out = _invoke(cli, "status", f, "--cache", cache)
    assert out.count("never run on this cache") == 3 and "0 cached, 3 stale" in out

    out = _invoke(cli, "run", f, "--cache", cache, "--runs-dir", runs, "-q", "--only", "idx")
    assert "texts: 2 stages, 0 cached, 2 run" in out and "manifest: " in out
    out = _invoke(cli, "run", f, "--cache", cache, "--runs-dir", runs, "-q")
    assert "texts: 3 stages, 2 cached, 1 run" in out

    edit_yaml(f, lambda d: d["stages"]["idx"]["params"].update(metric="ip"))
    out = _invoke(cli, "status", f, "--cache", cache)
    assert "parameter metric: 'cosine' -> 'ip'" in out and "2 cached, 1 stale" in out
    rows = json.loads(_invoke(cli, "status", f, "--cache", cache, "--json"))
    assert [r["state"] for r in rows] == ["cached", "cached", "stale"]

    out = _invoke(cli, "run", f, "--cache", cache, "--runs-dir", runs, "-q", "--force", "enc_test")
    assert "forced" in out and "texts: 3 stages, 1 cached, 2 run" in out
    out = _invoke(cli, "gc", "--cache", cache, "--dry-run")
    assert "would remove 1 entries" in out and "would remove index/" in out
    out = _invoke(cli, "gc", "--cache", cache)
    assert "removed 1 entries" in out and "kept 3 referenced by texts" in out


def test_errors_surface_as_config_errors(cli: typer.Typer, text_project: Path) -> None:
    from embedpipe.errors import ConfigError

    edit_yaml(
        text_project / "pipeline.yaml",
        lambda d: d["stages"]["idx"].update(inputs={"features": "nope"}),
    )
    with pytest.raises(ConfigError, match="stage 'idx'.*input 'features' names 'nope'"):
        CliRunner().invoke(
            cli, ["status", str(text_project / "pipeline.yaml")], catch_exceptions=False
        )


def test_run_and_status_list_each_stage_output_and_next_commands(
    cli: typer.Typer, text_project: Path
) -> None:
    f, cache, runs = text_project / "pipeline.yaml", text_project / "cache", text_project / "runs"
    out = _invoke(cli, "run", f, "--cache", cache, "--runs-dir", runs, "-q", "--paths")
    listed = {}
    listing = out.split("outputs:\n", 1)[1].split("next:\n", 1)[0]
    for line in listing.replace("\n      ", "  ").splitlines():  # a long path: its own line
        name, kind, path = line.split(maxsplit=2)
        listed[name] = (kind, Path(path))
    assert set(listed) == {"enc_train", "enc_test", "idx"}
    assert listed["enc_train"][1].name == "features.h5" and listed["idx"][1].is_dir()
    assert all(p.exists() for _, p in listed.values())
    steps = " ".join(out.split("next:\n", 1)[1].replace("\\\n", " ").split())  # " \\" splits
    # a CSV of the user's own: a placeholder query, not the demo's (that is for the demo only)
    assert f"embedpipe search {listed['idx'][1]} --query 'YOUR TEXT' -k 5" in steps
    assert f"embedpipe serve {listed['idx'][1]}" in steps
    out = _invoke(cli, "status", f, "--cache", cache, "--paths")
    assert ["enc_test", "encode", str(listed["enc_test"][1])] in [
        ln.split() for ln in out.replace("\n      ", "  ").splitlines()
    ]
    rows = json.loads(_invoke(cli, "status", f, "--cache", cache, "--json"))
    assert {r["name"]: r["path"] for r in rows}["idx"] == str(listed["idx"][1])


def test_plan_forecasts_and_dry_run_runs_nothing(cli: typer.Typer, text_project: Path) -> None:
    f, cache = text_project / "pipeline.yaml", text_project / "cache"
    out = _invoke(cli, "run", f, "--cache", cache, "--dry-run", "--sizes", "20,60")
    assert "forecast: 3 stages to run" in out and "calibrated on 20/60 items" in out
    assert not any((cache / k).exists() for k in ("encode", "index"))
    _invoke(cli, "run", f, "--cache", cache, "--runs-dir", text_project / "runs", "-q")
    out = _invoke(cli, "plan", f, "--cache", cache)
    assert "forecast: 0 stages to run" in out and out.count("cached") == 3
