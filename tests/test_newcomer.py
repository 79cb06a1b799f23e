"""A newcomer's path through the README, end to end, in fresh subprocesses WITHOUT
``HF_HUB_OFFLINE`` (the rest of the suite sets it): the "Python in five lines" block verbatim,
the "First steps" CLI lines verbatim, then the demo pipeline → the printed paths exist → the
printed search command shows the texts it found."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent
EMBEDPIPE = BIN / "embedpipe"

pytestmark = pytest.mark.slow
#: Snippets the demo pipeline trains on here (its test set is a third of it).
DEMO_TRAIN = 120


def _block(heading: str, lang: str) -> str:
    """The first ``lang`` code block under the README section ``heading``."""
    m = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## )", README, re.S | re.M)
    assert m, f"README has no section {heading!r}"
    code = re.search(rf"```{lang}\n(.*?)```", m.group(1), re.S)
    assert code, f"README section {heading!r} has no {lang} block"
    return code.group(1)


def _env(tmp_path: Path) -> dict[str, str]:
    """A newcomer's environment: no hub switches, the venv's bin first on the PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "TRANSFORMERS_", "EMBEDPIPE_")) and k != "PYTEST_CURRENT_TEST"
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["TORCH_HOME"] = str(tmp_path / "torch")  # `weights import` writes here, not in ~
    return env


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    took = time.perf_counter() - t
    assert r.returncode == 0, f"{shlex.join(cmd)} failed ({took:.1f}s):\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    # Bundled assets never go to the hub: no retries, no hub warnings.
    assert "huggingface.co" not in r.stderr and "couldn't find them in the cached" not in r.stderr
    return r.stdout


def test_python_in_five_lines_runs_verbatim(tmp_path: Path) -> None:
    code = _block("Python in five lines", "python")
    out = _run([sys.executable, "-c", code], tmp_path, _env(tmp_path))
    assert re.search(r"\['(fresh|rotten)'\]", out), out
    assert (tmp_path / "cache" / "reviews.h5").is_file()


def test_first_steps_cli_lines_then_demo_paths_then_search(tmp_path: Path) -> None:
    env = _env(tmp_path)
    lines = [ln.split("  #")[0].strip() for ln in _block("First steps", "bash").splitlines()]
    commands = [ln for ln in lines if ln.startswith("embedpipe ")]
    assert any("minilm" in c for c in commands) and any("--bundled" in c for c in commands)
    demo = [c for c in commands if c.startswith("embedpipe run ")]
    assert demo == ["embedpipe run pipelines/quickstart.yaml --paths"]
    for cmd in commands:
        if cmd in demo:
            continue
        _run(shlex.split(cmd), tmp_path, env)  # found on the PATH, as after `activate`
    assert (tmp_path / "cache" / "first.h5").is_file() and (
        tmp_path / "cache" / "digits.h5"
    ).is_file()

    # The demo pipeline, smaller (same stages; fewer snippets so the test takes a minute).
    spec = yaml.safe_load((ROOT / "pipelines" / "quickstart.yaml").read_text())
    spec["datasets"]["reviews_train"]["limit"] = DEMO_TRAIN
    spec["datasets"]["reviews_test"]["limit"] = DEMO_TRAIN // 3
    (tmp_path / "pipelines").mkdir()
    (tmp_path / "pipelines" / "quickstart.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = _run(shlex.split(demo[0]), tmp_path, env)

    printed = re.findall(r"^\s*(?:manifest|report):\s+(\S+)$", out, re.M)
    assert len(printed) >= 2, out
    outputs = out.split("outputs:", 1)[1].split("next:", 1)[0].replace("\n      ", "  ")
    paths = [ln.split()[-1] for ln in outputs.strip().splitlines()]
    kinds = {ln.split()[1] for ln in outputs.strip().splitlines()}
    assert {"encode", "train", "index", "report"} <= kinds, out
    for p in [*printed, *paths]:
        assert (tmp_path / p).exists(), f"{p} was printed but does not exist:\n{out}"

    joined = out.split("next:", 1)[1].replace("\\\n", "")  # a command split with " \\"
    steps = [ln.strip() for ln in joined.strip().splitlines()]
    search = [s for s in steps if s.startswith("embedpipe search ") and "--query" in s]
    assert search, out
    found = _run(shlex.split(search[0]), tmp_path, env)
    from embedpipe.data import open_source

    texts = [
        open_source("builtin:rotten_tomatoes", split="train", limit=DEMO_TRAIN, seed=0).load(i)
        for i in range(DEMO_TRAIN)
    ]
    shown = [t for t in texts if t[:40] in found]
    assert len(shown) >= 3, f"the search shows no snippet texts:\n{found}"
