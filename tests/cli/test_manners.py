"""CLI manners: --version, -v/-q/--log-level everywhere, quiet third parties, NotFoundError
(not KeyError) as a user error, light listing commands, examples in --help, flag-named errors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import typer

from embedpipe import __version__
from embedpipe.cli import app, main

from ._run import run

ROOT = Path(__file__).resolve().parents[2]
ORIGINAL_ENV = dict(os.environ)


def _commands() -> list[list[str]]:
    """Every leaf command, as its argv path (``["weights", "import"]``)."""
    group = typer.main.get_command(app)
    out: list[list[str]] = []

    def walk(cmd: object, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            out.append(path)

    walk(group, [])
    return out


@pytest.fixture()
def table(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    words = ["good", "bad", "movie", "great", "awful", "plot"]
    vec = tmp_path / "vec.txt"
    vec.write_text(
        "\n".join(f"{w} " + " ".join(f"{v:.3f}" for v in rng.normal(size=5)) for w in words) + "\n"
    )
    csv = tmp_path / "reviews.csv"
    csv.write_text(
        "body,sentiment,url\ngood movie,pos,u1\nbad plot,neg,u2\ngreat movie,pos,u3\n"
        ",neg,u4\nawful,neg,u5\n"
    )
    return vec, csv


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["--version"], capsys)
    assert code == 0 and out.strip() == f"embedpipe {__version__}"


def test_every_command_has_logging_options_and_an_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    commands = _commands()
    assert ["encode"] in commands and ["weights", "import"] in commands and len(commands) >= 15
    for path in commands:
        code, out, _ = run([*path, "--help"], capsys)
        assert code == 0, path
        flat = " ".join(out.split())
        for flag in ("--verbose", "-v", "--quiet", "-q", "--log-level"):
            assert flag in flat, (path, flag)
        assert "Example: embedpipe " + path[0] in flat, path


def test_log_levels_on_encode(
    tmp_path: Path, table: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    import embedpipe.data

    seen: list[dict[str, int]] = []
    original = embedpipe.data.open_source

    def spy(*args: object, **kwargs: object) -> object:  # levels while the command runs
        names = ("embedpipe", "faiss", "transformers", "huggingface_hub")
        seen.append({n: logging.getLogger(n).getEffectiveLevel() for n in names})
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(embedpipe.data, "open_source", spy)
    vec, csv = table
    base = [
        "encode",
        "--data",
        str(csv),
        "--text-column",
        "body",
        "--on-error",
        "skip",
        "--backbone",
        f"word-vectors:{vec}",
    ]
    code, out, err = run([*base, "--out", str(tmp_path / "a.h5")], capsys)
    assert code == 0 and "WARNING embedpipe" in err, err  # the skip (the summary is on stdout)
    assert seen[-1] == {
        "embedpipe": logging.WARNING,  # details at -v
        "faiss": logging.WARNING,
        "transformers": logging.WARNING,
        "huggingface_hub": logging.WARNING,
    }
    key = "HF_HUB_DISABLE_PROGRESS_BARS"
    assert os.environ.get(key) == ORIGINAL_ENV.get(key)  # put back after the command
    code, out, err = run([*base, "--out", str(tmp_path / "b.h5"), "-q"], capsys)
    assert code == 0 and "INFO" not in err and "4 encoded" in out, err
    assert seen[-1]["embedpipe"] == logging.WARNING
    code, out, err = run(["-q", *base, "--out", str(tmp_path / "c.h5")], capsys)
    assert code == 0 and "INFO" not in err, err  # before the command name too
    code, out, err = run([*base, "--out", str(tmp_path / "d.h5"), "--log-level", "debug"], capsys)
    assert code == 0 and seen[-1]["embedpipe"] == logging.DEBUG
    code, out, err = run(["-v", *base, "--out", str(tmp_path / "f.h5")], capsys)
    assert code == 0 and seen[-1]["embedpipe"] == logging.DEBUG
    assert seen[-1]["transformers"] == logging.WARNING  # -v is embedpipe's debug only
    code, out, err = run([*base, "--out", str(tmp_path / "g.h5"), "-vv"], capsys)
    assert code == 0 and seen[-1]["transformers"] < logging.WARNING  # -vv: everything
    code, out, err = run([*base, "--out", str(tmp_path / "e.h5"), "--log-level", "loud"], capsys)
    assert code == 2 and "--log-level 'loud'" in err and "debug, info" in err


def test_not_found_is_a_user_error_but_a_key_error_is_a_bug(
    tmp_path: Path, table: tuple[Path, Path], capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    vec, _ = table
    argv = ["encode", "--data", "builtin:digts", "--backbone", f"word-vectors:{vec}"]
    code, _, err = run([*argv, "--out", str(tmp_path / "x.h5")], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "error: unknown builtin dataset 'digts'; did you mean 'digits'? available: digits, "
        "fashion_mnist, mnist, rotten_tomatoes."
    ]
    import embedpipe.pipeline as pipeline

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug, not a user error")

    monkeypatch.setattr(pipeline, "load_pipeline", broken)
    (tmp_path / "p.yaml").write_text("name: p\n")
    with pytest.raises(KeyError, match="a bug"):
        main(["dag", str(tmp_path / "p.yaml")])


def test_errors_name_cli_flags(
    tmp_path: Path, table: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    vec, csv = table
    base = ["encode", "--data", str(csv), "--backbone", f"word-vectors:{vec}"]
    out = ["--out", str(tmp_path / "x.h5")]
    code, _, err = run([*base, *out], capsys)  # no text or path column, none named
    assert code == 2 and "--text-column ..." in err and "--path-column ..." in err, err
    assert "text_column" not in err and "path_column" not in err
    code, _, err = run([*base, *out, "--text-column", "body", "--label-column", "sentimnt"], capsys)
    assert code == 2 and "--label-column 'sentimnt'" in err and "did you mean 'sentiment'" in err
    assert "label_column" not in err
    code, _, err = run([*base, *out, "--text-column", "body"], capsys)  # an empty text
    assert code == 2 and "pass --on-error skip to skip bad items" in err, err
    assert "on_error=" not in err


def test_keep_columns_reach_the_store(
    tmp_path: Path, table: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from embedpipe.store import FeatureStore

    vec, csv = table
    argv = [
        "encode",
        "--data",
        str(csv),
        "--text-column",
        "body",
        "--keep-columns",
        "url,sentiment",
        "--on-error",
        "skip",
        "--backbone",
        f"word-vectors:{vec}",
        "--out",
        str(tmp_path / "k.h5"),
        "-q",
    ]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    with FeatureStore(tmp_path / "k.h5") as fs:
        assert fs.column("url").tolist() == ["u1", "u2", "u3", "u5"]
        assert fs.column("sentiment").tolist() == ["pos", "neg", "pos", "neg"]
    code, _, err = run(
        [*argv[:-3], "--out", str(tmp_path / "l.h5"), "--keep-columns", "ulr"], capsys
    )
    assert code == 2 and "did you mean 'url'" in err


LIGHT = """
import sys, time
t = time.perf_counter()
from embedpipe.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "sklearn", "transformers", "faiss", "h5py") if m in sys.modules)
print("HEAVY", heavy, "SECONDS", round(time.perf_counter() - t, 3))
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["heads"], ["backbones"]])
def test_listing_commands_import_nothing_heavy(argv: list[str]) -> None:
    r = subprocess.run(
        [sys.executable, "-c", LIGHT, *argv], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert r.returncode == 0, r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("HEAVY [] "), last
    assert float(last.split()[-1]) < 3.0, last  # under 1 s on a quiet machine


@pytest.mark.slow
def test_third_party_noise_is_off(tmp_path: Path) -> None:
    """A real Hugging Face load from the CLI shows no weight-loading bar or hub warning; -vv
    brings them back."""
    csv = tmp_path / "t.csv"
    csv.write_text("text\na fine film\na dull one\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    env["HF_HUB_OFFLINE"] = "1"
    cmd = [sys.executable, "-m", "embedpipe", "encode", "--data", str(csv), "--backbone"]
    argv = [*cmd, "minilm", "--precision", "fp32", "--out", str(tmp_path / "m.h5")]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Loading weights" not in r.stderr and "it/s]" not in r.stderr, r.stderr
    assert "WARNING" not in r.stderr, r.stderr
    t = time.perf_counter()
    r = subprocess.run(
        [*argv[:-1], str(tmp_path / "n.h5"), "-vv"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert r.returncode == 0 and "Loading weights" in r.stderr, (r.stderr, time.perf_counter() - t)


def test_encode_prints_its_summary_once(
    tmp_path: Path,
    table: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from embedpipe.data import open_source
    from embedpipe.encoding import encode

    vec, csv = table
    out_path = tmp_path / "s.h5"
    argv = ["encode", "--data", str(csv), "--text-column", "body", "--on-error", "skip"]
    argv += ["--backbone", f"word-vectors:{vec}", "--out", str(out_path)]
    code, out, err = run(argv, capsys)
    line = f"{out_path}: 5 items"
    assert code == 0 and out.count(line) == 1, out  # on stdout, for scripts
    assert line not in err and "WARNING" in err, err  # not again in the log; the skip is
    lib_out = tmp_path / "t.h5"
    with caplog.at_level(logging.INFO, logger="embedpipe"):  # a library caller keeps the log
        encode(
            open_source(str(csv), text_column="body"), f"word-vectors:{vec}", lib_out,
            progress=False, on_error="skip",
        )  # fmt: skip
    summaries = [
        r.getMessage() for r in caplog.records if r.__dict__.get("summary_of") == str(lib_out)
    ]
    assert len(summaries) == 1 and summaries[0].startswith(f"{lib_out}: 5 items (4 encoded")
