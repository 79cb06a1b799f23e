"""Root conftest: docstring examples (``pytest --doctest-modules embedpipe``) run in a fresh
temporary working directory, so an example may write ``cache/x.h5`` without touching the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _doctest_in_tmp_dir(request: pytest.FixtureRequest, tmp_path: Path):
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        yield
    finally:
        os.chdir(old)
