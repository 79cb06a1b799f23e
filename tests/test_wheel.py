"""A wheel built from this tree and installed into a fresh virtual environment outside the
repository (issue 27): `embedpipe examples` writes the example pipelines and an encode of
bundled data runs, with no environment variable. The fresh environment reuses the installed
packages of this one (a path file), so nothing is downloaded."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{cmd} failed:\n{r.stdout}\n{r.stderr}"
    return r


def test_a_wheel_in_a_fresh_venv_writes_examples_and_encodes(tmp_path: Path) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "TRANSFORMERS_", "EMBEDPIPE_", "PYTHON"))
        and k != "PYTEST_CURRENT_TEST"
    }
    env["TORCH_HOME"] = str(tmp_path / "torch")
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v"]
    built = _run([*build, "-w", str(dist), str(ROOT)], tmp_path, env)
    assert "project.license" not in built.stdout + built.stderr  # SPDX form: no banner
    (wheel,) = dist.glob("embedpipe-*.whl")
    fresh = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(fresh)
    py = fresh / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.strip()  # fmt: skip
    # This environment's packages (torch, ...), as a plain path: its .pth files (the editable
    # install of this tree among them) are not read, so `embedpipe` is the wheel's.
    (Path(site) / "shared_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps"]
    _run([*pip, "--no-index", str(wheel)], tmp_path, env)
    work = tmp_path / "user"
    work.mkdir()
    exe = str(fresh / "bin" / "embedpipe")
    where = _run([str(py), "-c", "import embedpipe; print(embedpipe.__file__)"], work, env)
    assert where.stdout.startswith(site), where.stdout
    out = _run([exe, "examples"], work, env).stdout
    assert "embedpipe run pipelines/quickstart.yaml" in out, out
    assert (work / "pipelines" / "quickstart.yaml").read_text() == (
        ROOT / "pipelines" / "quickstart.yaml"
    ).read_text()
    _run([exe, "dag", "pipelines/quickstart.yaml"], work, env)
    argv = [exe, "encode", "--data", "builtin:rotten_tomatoes?limit=20", "--backbone", "minilm"]
    r = _run([*argv, "--out", "cache/first.h5"], work, env)
    assert "cache/first.h5: 20 items (20 encoded" in r.stdout, r.stdout
    assert "INFO" not in r.stderr, r.stderr
