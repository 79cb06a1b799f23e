"""The `embedpipe` command: encode, inspect, verify, backbones, weights import, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from embedpipe.store import FeatureStore

from ._run import run


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
        "text,sentiment\ngood movie,pos\nbad plot,neg\ngreat great movie,pos\n,neg\nawful,neg\n"
    )
    return vec, csv


def test_encode_inspect_verify(tmp_path: Path, table, capsys) -> None:
    vec, csv = table
    out = tmp_path / "s.h5"
    argv = [
        "encode",
        "--data",
        str(csv),
        "--text-column",
        "text",
        "--label-column",
        "sentiment",
        "--backbone",
        f"word-vectors:{vec}",
        "--out",
        str(out),
        "--quiet",
    ]
    code, _, err = run(argv, capsys)
    assert code == 2 and "row" in err and "empty text" in err and "--on-error skip" in err
    code, stdout, _ = run([*argv, "--on-error", "skip"], capsys)
    # the text path stores every good batch before it raises: the 4 good rows were kept
    assert code == 0 and "0 encoded" in stdout and "4 already there" in stdout
    assert "1 skipped" in stdout
    with FeatureStore(out) as fs:
        assert len(fs) == 4 and fs.classes == ["neg", "pos"] and len(fs.errors) == 1
    code, stdout, _ = run(["inspect", str(out)], capsys)
    assert (
        code == 0
        and "4 x 5 float32" in stdout
        and "word_vectors" in stdout
        and "skipped      1" in stdout
    )
    code, stdout, _ = run(["inspect", str(out), "--json"], capsys)
    assert json.loads(stdout)["n_rows"] == 4
    code, stdout, _ = run(["verify", str(out)], capsys)
    assert code == 0 and "ok (4 rows" in stdout


def test_clear_errors(tmp_path: Path, table, capsys) -> None:
    vec, csv = table
    code, _, err = run(
        [
            "encode",
            "--data",
            str(csv),
            "--backbone",
            "no-such-model",
            "--out",
            str(tmp_path / "x.h5"),
        ],
        capsys,
    )
    assert code == 2 and "unknown backbone 'no-such-model'" in err and "minilm" in err
    code, _, err = run(
        [
            "encode",
            "--data",
            str(csv),
            "--text-column",
            "txt",
            "--backbone",
            f"word-vectors:{vec}",
            "--out",
            str(tmp_path / "x.h5"),
        ],
        capsys,
    )
    assert code == 2 and "'txt'" in err and "text" in err and "sentiment" in err
    code, _, err = run(
        [
            "encode",
            "--data",
            str(tmp_path / "nope.csv"),
            "--backbone",
            f"word-vectors:{vec}",
            "--out",
            str(tmp_path / "x.h5"),
        ],
        capsys,
    )
    assert code == 2 and "nope.csv" in err and "reviews.csv" in err
    code, _, err = run(["inspect", str(tmp_path / "missing.h5")], capsys)
    assert code == 2 and "does not exist" in err
    code, _, err = run(["encode", "--data", str(csv)], capsys)
    assert code == 2 and "--backbone" in err


def test_backbones_list(capsys) -> None:
    code, stdout, _ = run(["backbones"], capsys)
    assert code == 0 and "minilm" in stdout and "torchvision:" in stdout


def test_weights_import_bundled_makes_the_enum_load_offline(tmp_path: Path) -> None:
    env = {"TORCH_HOME": str(tmp_path / "torch"), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    # One fresh process: the import writes the checkpoint (checked before anything could
    # download it), then torchvision's own enum loads it offline.
    ckpt = tmp_path / "torch" / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    code = textwrap.dedent(
        f"""\
        from pathlib import Path
        from embedpipe.cli import main
        try:
            main(["weights", "import", "--bundled"])
        except SystemExit as e:
            assert not e.code, e.code
        assert Path({str(ckpt)!r}).is_file(), "weights import wrote no checkpoint"
        import torchvision
        from torchvision.models import MobileNet_V2_Weights as W
        m = torchvision.models.mobilenet_v2(weights=W.IMAGENET1K_V1)
        print("loaded")
        """
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and "loaded" in r.stdout, r.stderr


def test_encode_with_a_commit_interval_groups_commits(tmp_path: Path, table, capsys) -> None:
    from embedpipe.store import StoreWriter

    vec, csv = table
    out = tmp_path / "s.h5"
    appends: list[int] = []
    real = StoreWriter.append

    def counting(self, features, *a, **k):  # noqa: ANN001, ANN002, ANN003
        appends.append(len(features))
        return real(self, features, *a, **k)

    StoreWriter.append = counting  # type: ignore[method-assign]
    try:
        argv = ["encode", "--data", str(csv), "--text-column", "text", "--label-column",
                "sentiment", "--backbone", f"word-vectors:{vec}", "--out", str(out), "--quiet",
                "--on-error", "skip", "--batch-size", "1", "--commit-interval", "3600"]  # fmt: skip
        code, _, err = run(argv, capsys)
    finally:
        StoreWriter.append = real  # type: ignore[method-assign]
    assert code == 0, err
    assert appends == [4]  # four one-item batches, one commit at the end
    with FeatureStore(out) as fs:
        assert fs.complete and len(fs) == 4 and len(fs.errors) == 1
    code, _, err = run([*argv[:-1], "-5"], capsys)
    assert code == 2 and "--commit-interval -5" in err
