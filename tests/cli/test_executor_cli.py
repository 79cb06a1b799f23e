"""`embedpipe encode --executor` and `embedpipe run --executor`: sharded stores from the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from embedpipe.store import FeatureStore
from embedpipe.store.shards import is_sharded, read_shard_table

from ._run import run

WORDS = ["good", "bad", "movie", "great", "awful", "plot", "actors", "slow", "fun", "dull"]


@pytest.fixture
def table(tmp_path: Path) -> tuple[Path, Path]:
    """A word-vectors file and a 40-row review table over its words."""
    rng = np.random.default_rng(0)
    vec = tmp_path / "vec.txt"
    vec.write_text(
        "\n".join(f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(size=8)) for w in WORDS) + "\n"
    )
    rows = [
        f"r{i:02d},{' '.join(rng.choice(WORDS, size=int(rng.integers(1, 6))))},{'pos' if i % 2 else 'neg'}"
        for i in range(40)
    ]
    csv = tmp_path / "reviews.csv"
    csv.write_text("id,text,label\n" + "\n".join(rows) + "\n")
    return vec, csv


def encode_argv(vec: Path, csv: Path, out: Path) -> list[str]:
    return [
        "encode",
        "--data",
        str(csv),
        "--id-column",
        "id",
        "--text-column",
        "text",
        "--label-column",
        "label",
        "--backbone",
        f"word-vectors:{vec}",
        "--out",
        str(out),
        "--batch-size",
        "8",
        "--workers",
        "0",
        "--quiet",
    ]


def by_id(path: Path) -> dict[str, tuple[int, np.ndarray]]:
    with FeatureStore(path) as fs:
        fs.verify()
        f, y = fs.features, fs.labels
        return {i: (int(y[r]), f[r]) for r, i in enumerate(fs.ids.tolist())}


def test_encode_with_local_executor_and_shards_equals_plain_encode(
    tmp_path: Path, table: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    vec, csv = table
    plain, sharded = tmp_path / "plain.h5", tmp_path / "sharded.h5"
    assert run(encode_argv(vec, csv, plain), capsys)[0] == 0
    code, out, err = run(
        [*encode_argv(vec, csv, sharded), "--executor", "local", "--n-shards", "2"], capsys
    )
    assert code == 0, err
    assert "40 items (40 encoded" in out and "2 shards (0 already complete) on local" in out
    assert is_sharded(sharded) and len(read_shard_table(sharded)) == 2
    a, b = by_id(plain), by_id(sharded)
    assert a.keys() == b.keys() and len(a) == 40
    for item_id, (label, feats) in a.items():
        assert b[item_id][0] == label
        np.testing.assert_array_equal(b[item_id][1], feats)
    # a re-run finds every shard complete and encodes nothing
    code, out, _ = run(
        [*encode_argv(vec, csv, sharded), "--executor", "local", "--n-shards", "2"], capsys
    )
    assert code == 0 and "0 encoded" in out and "2 shards (2 already complete)" in out
    code, out, _ = run(["inspect", str(sharded), "--json"], capsys)
    assert code == 0 and json.loads(out)["extra"]["n_shards"] == 2


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--executor", "spark"], r"bad executor settings.*name.*'local' or 'ray'"),
        (["--executor-workers", "2"], r"--executor-workers needs an executor: add --executor ray"),
        (["--n-shards", "2"], r"--n-shards/--shard-size .* add --executor local"),
        (["--executor", "local", "--n-shards", "2", "--shard-size", "8"], r"not both"),
    ],
)
def test_encode_bad_executor_flags_are_clear_errors(
    tmp_path: Path,
    table: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
    expected: str,
) -> None:
    vec, csv = table
    code, _, err = run([*encode_argv(vec, csv, tmp_path / "x.h5"), *flags], capsys)
    assert code == 2
    assert re.search(expected, err), err


def test_run_executor_flags_override_the_file(
    tmp_path: Path, table: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    vec, csv = table
    pipeline = {
        "name": "cli-shards",
        "executor": {"name": "ray", "num_workers": 8},
        "datasets": {
            "reviews": {
                "source": str(csv),
                "id_column": "id",
                "text_column": "text",
                "label_column": "label",
            }
        },
        "stages": {
            "features": {
                "kind": "encode",
                "dataset": "reviews",
                "params": {"backbone": f"word-vectors:{vec}", "n_shards": 2, "batch_size": 8},
            }
        },
    }
    file = tmp_path / "p.yaml"
    file.write_text(yaml.safe_dump(pipeline))
    base = ["run", str(file), "--cache", str(tmp_path / "cache"), "--runs-dir", str(tmp_path)]
    code, out, err = run([*base, "--executor", "local", "-q"], capsys)  # ray -> local
    assert code == 0, err
    manifest = json.loads(Path(out.split("manifest: ")[1].split()[0]).read_text())
    assert manifest["executor"] == {"name": "local", "num_workers": 8}
    entry = tmp_path / "cache" / manifest["stages"][0]["entry"]
    assert is_sharded(entry / "features.h5") and len(read_shard_table(entry / "features.h5")) == 2
    # --executor none: no executor, and the stage is still the same (cached) entry
    code, out, _ = run([*base, "--executor", "none", "-q"], capsys)
    assert code == 0 and "1 cached, 0 run" in out
    code, out, err = run([*base, "--executor-workers", "0"], capsys)
    assert code == 2 and "--executor-workers" in err
    file.write_text(yaml.safe_dump({**pipeline, "executor": {"name": "ray", "cpus": 2}}))
    code, _, err = run(base, capsys)
    assert code == 2 and re.search(r"p\.yaml line \d+: key 'executor'.*cpus", err), err
