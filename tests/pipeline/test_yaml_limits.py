"""Pipeline files that would exhaust memory or lose a stage (issue 22, items 7 and 9): an
alias bomb, an oversized file and a repeated stage name are each refused in one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from embedpipe.errors import ConfigError
from embedpipe.pipeline import Pipeline
from embedpipe.pipeline.spec import MAX_PIPELINE_BYTES

ROOT = Path(__file__).resolve().parents[2]

OK = """
datasets:
  items: {source: "builtin:digits"}
stages:
  embed:
    kind: encode
    dataset: items
    params: &p {backbone: "torchvision:resnet18", weights: none}
  embed2:
    kind: encode
    dataset: items
    params: *p
"""


def _bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\ndatasets: {}\nstages: {}\n"


def test_an_alias_bomb_is_refused_quickly_in_bounded_memory(tmp_path: Path) -> None:
    f = tmp_path / "bomb.yaml"
    f.write_text(_bomb())
    assert f.stat().st_size < 500
    # In a child limited to 2 GB of address space (the bomb took 19 GB before the fix).
    # The bound is the child's address-space limit: past 2 GB it would die of MemoryError, not
    # exit 2 with the one-line error. (Peak-RSS counters are no measure here: a forked child
    # starts from the test process's own peak, and RUSAGE_CHILDREN counts every child the
    # session ever waited for.)
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30));"
        "from embedpipe.cli import main; main(['dag', sys.argv[1]])"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(f)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert r.returncode == 2, r.stderr[-1000:]
    assert r.stderr.count("\n") == 1 and "expands to" in r.stderr and "aliases" in r.stderr


def test_aliases_within_the_bound_still_work(tmp_path: Path) -> None:
    f = tmp_path / "ok.yaml"
    f.write_text(OK)
    p = Pipeline.from_file(f)
    assert {"embed", "embed2"} <= set(p.stages)


def test_an_oversized_pipeline_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    f.write_text(OK + "# " + "x" * MAX_PIPELINE_BYTES + "\n")
    with pytest.raises(ConfigError, match=r"is 1\.0 MiB; a pipeline file is at most 1 MiB"):
        Pipeline.from_file(f)


def test_a_repeated_stage_name_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "dup.yaml"
    f.write_text(OK + "  embed:\n    kind: encode\n    dataset: items\n    params: *p\n")
    with pytest.raises(ConfigError, match=r"line 13: key 'embed' appears twice \(also line 5\)"):
        Pipeline.from_file(f)
