"""Running one CLI invocation in-process, as the CLI tests do."""

from __future__ import annotations

import pytest

from embedpipe.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``embedpipe <argv>`` in this process: its exit code, stdout and stderr."""
    try:
        main(argv)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err
