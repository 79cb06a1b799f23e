"""Fixtures shared by the encode tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def writer_threads(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each writer the encode makes runs on its own thread, in the order made."""
    import embedpipe.encoding.engine as engine

    made: list[bool] = []
    real = engine.BackgroundWriter

    def spy(writer: Any, *a: Any, **k: Any) -> Any:
        bg = real(writer, *a, **k)
        made.append(bg._thread is not None)
        return bg

    monkeypatch.setattr(engine, "BackgroundWriter", spy)
    return made
