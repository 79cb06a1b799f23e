"""The index, search, eval-index and serve commands, run through typer's CliRunner."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from embedpipe.cli.index_cmd import register
from embedpipe.errors import ConfigError, FingerprintMismatchError

from .conftest import write_store


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    a = typer.Typer()
    register(a)
    return a


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def test_index_then_search_text_end_to_end(app, runner, text_store, tmp_path):
    out = tmp_path / "texts.index"
    r = runner.invoke(app, ["index", str(text_store), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "Flat (flat: small data" in r.output and (out / "meta.json").is_file()
    r = runner.invoke(app, ["search", str(out), "--query", "bake a chocolate cake", "-k", "3"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["rank", "id", "label", "score"]
    assert "cooking-" in lines[2] and "cooking" in lines[2].split()[2]
    r = runner.invoke(app, ["search", str(out), "--query-id", "space-0", "-k", "2", "--json"])
    hits = json.loads(r.stdout)
    assert [h["rank"] for h in hits] == [1, 2] and all(h["label"] == "space" for h in hits)
    assert "space-0" not in [h["id"] for h in hits]


def test_index_options_tune_and_eval_index_prints_the_table(app, runner, blobs, tmp_path):
    out = tmp_path / "b.index"
    r = runner.invoke(
        app,
        ["index", str(blobs[0]), "-o", str(out), "--kind", "ivf", "--target-recall", "0.9", "-q"],
    )
    assert r.exit_code == 0, r.output
    assert "IVF256,Flat (ivf" in r.output and "tuned nprobe=" in r.output and "reached" in r.output
    r = runner.invoke(
        app,
        [
            "eval-index",
            str(out),
            "--n-queries",
            "200",
            "--param",
            "nprobe=2",
            "--param",
            "nprobe=16",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "recall@1" in r.output and "recall@100" in r.output and "queries/s" in r.output
    assert "nprobe=2" in r.output and "nprobe=16" in r.output and "exact, streamed" in r.output
    r = runner.invoke(app, ["eval-index", str(out), "--n-queries", "50", "--json"])
    report = json.loads(r.stdout)
    assert report["n_queries"] == 50 and report["rows"][0]["recall"]["10"] >= 0.85
    # The same folder again is an update (nothing to do); fixed params skip tuning.
    r = runner.invoke(app, ["index", str(blobs[0]), "-o", str(out), "--kind", "ivf", "-q"])
    assert r.exit_code == 0 and "added 0, removed 0, re-tuned: no" in r.output, r.output
    r = runner.invoke(
        app,
        [
            "index",
            str(blobs[0]),
            "-o",
            str(out),
            "--kind",
            "ivf",
            "--param",
            "nprobe=5",
            "--overwrite",
            "-q",
        ],
    )
    assert r.exit_code == 0 and "search params: nprobe=5" in r.output


def test_search_needs_exactly_one_query(app, runner, text_store, tmp_path):
    out = tmp_path / "t.index"
    runner.invoke(app, ["index", str(text_store), "-o", str(out), "-q"])
    r = runner.invoke(app, ["search", str(out)])
    assert isinstance(r.exception, ConfigError) and "exactly one of --query" in str(r.exception)
    r = runner.invoke(app, ["search", str(out), "--query", "x", "--query-id", "space-1"])
    assert isinstance(r.exception, ConfigError)


def test_stores_of_two_backbones_are_refused(app, runner, tmp_path, blobs):
    _, X, _ = blobs
    a = write_store(tmp_path / "a.h5", X[:50])
    b = write_store(
        tmp_path / "b.h5", X[50:100], ids=[f"b{i}" for i in range(50)], fingerprint="fp-b"
    )
    r = runner.invoke(app, ["index", str(a), str(b), "-o", str(tmp_path / "x")])
    assert isinstance(r.exception, FingerprintMismatchError)


def test_bad_param_syntax(app, runner, blobs, tmp_path):
    r = runner.invoke(
        app, ["index", str(blobs[0]), "-o", str(tmp_path / "x"), "--param", "nprobe:4"]
    )
    assert isinstance(r.exception, ConfigError) and "NAME=INTEGER" in str(r.exception)


def test_serve_without_the_extra_names_the_pip_command(app, runner, monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` fail
    r = runner.invoke(app, ["serve", str(tmp_path / "whatever")])
    assert isinstance(r.exception, ConfigError)
    assert "pip install embedpipe[serve]" in str(r.exception) and "uvicorn" in str(r.exception)


def test_search_by_image_file(app, runner, image_store, image_folder, tmp_path):
    out = tmp_path / "digits.index"
    assert runner.invoke(app, ["index", str(image_store), "-o", str(out), "-q"]).exit_code == 0
    query = image_folder / "digit1" / "4.png"
    r = runner.invoke(app, ["search", str(out), "--query-image", str(query), "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)
    assert hits[0]["id"] == "digit1/4.png" and hits[0]["label"] == "digit1"
    r = runner.invoke(app, ["search", str(out), "--query", "the digit one"])
    assert isinstance(r.exception, ConfigError) and "--query-image" in str(r.exception)


def test_an_unknown_query_id_is_one_line_through_main(text_store, tmp_path, capsys):
    from embedpipe.cli import main

    out = tmp_path / "texts.index"
    with pytest.raises(SystemExit) as done:
        main(["index", str(text_store), "--out", str(out), "-q"])
    assert done.value.code in (0, None)
    with pytest.raises(SystemExit) as done:
        main(["search", str(out), "--query-id", "nope", "-k", "2"])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert "'nope' is not in this index" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
