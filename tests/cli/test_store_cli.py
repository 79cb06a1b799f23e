"""`embedpipe inspect / verify / export`: the store commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.store import FeatureStore


def _cli(args: list[str]) -> None:
    """Run the command; success ends in SystemExit(0) from typer."""
    try:
        main(args)
    except SystemExit as e:
        assert e.code in (0, None), e.code


@pytest.fixture()
def store(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    words = ["good", "bad", "movie", "plot"]
    vec = tmp_path / "vec.txt"
    vec.write_text(
        f"{len(words)} 4\n"
        + "".join(f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(size=4)) + "\n" for w in words)
    )
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\ngood movie,pos\nbad plot,neg\nthe movie is good,pos\n")
    out = tmp_path / "s.h5"
    _cli(
        [
            "encode",
            "--data",
            str(csv),
            "--text-column",
            "text",
            "--label-column",
            "label",
            "--backbone",
            f"word-vectors:{vec}",
            "--out",
            str(out),
            "-q",
        ]
    )
    return out, csv


def test_inspect_verify_deep_and_export(store, tmp_path: Path, capsys) -> None:
    out, csv = store
    _cli(["inspect", str(out), "--json"])
    prov = json.loads(capsys.readouterr().out)
    assert prov["schema_version"] == 2 and prov["complete"] is True and prov["precision"]
    _cli(["verify", str(out)])
    assert "checksums verified" in capsys.readouterr().out
    _cli(
        [
            "verify",
            str(out),
            "--deep",
            "--data",
            str(csv),
            "--text-column",
            "text",
            "--label-column",
            "label",
            "--sample",
            "3",
        ]
    )
    assert "3 re-encoded" in capsys.readouterr().out
    _cli(["export", str(out), "--to", "parquet"])
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "s.parquet")
    assert t.column("content").to_pylist() == ["good movie", "bad plot", "the movie is good"]
    with FeatureStore(out) as fs:
        assert t.column("id").to_pylist() == fs.ids.tolist()


def test_verify_deep_needs_data(store, capsys) -> None:
    out, _ = store
    with pytest.raises(SystemExit) as e:
        main(["verify", str(out), "--deep"])
    assert e.value.code == 2 and "--data" in capsys.readouterr().err
