"""``_report.emit``: the table printed and written as JSON + Markdown with its provenance."""

from __future__ import annotations

import json
from pathlib import Path

import _report
import pytest


def test_emit_writes_json_and_markdown_with_provenance(tmp_path: Path, capsys) -> None:
    rows = [
        {"backbone": "MiniLM", "items/s": 412.34, "min cos": "0.99991", "met": True},
        {"backbone": "ResNet-18", "items/s": 58.0, "met": False},
    ]
    path = _report.emit(
        "demo",
        "Demo",
        ["backbone", "items/s", "min cos", "met"],
        rows,
        ["a note"],
        out_dir=tmp_path,
    )
    assert path == tmp_path / "demo.json"
    res = json.loads(path.read_text())
    assert res["rows"] == rows and res["columns"] == ["backbone", "items/s", "min cos", "met"]
    m = res["machine"]
    assert m["cores"] >= 1 and m["cpu"] and isinstance(m["flags"], list)
    assert set(m["flags"]) <= set(_report.CPU_FLAGS)
    assert res["versions"]["numpy"]
    assert res["date"].endswith("UTC")
    md = (tmp_path / "demo.md").read_text()
    assert "| MiniLM | 412.3 | 0.99991 | yes |" in md
    assert "| ResNet-18 | 58.0 | – | no |" in md  # a missing cell is shown as such
    assert "- a note" in md and "Measured " in md
    assert "| MiniLM | 412.3 |" in capsys.readouterr().out


def test_emit_refuses_row_keys_outside_columns(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\['speed'\] are not in columns"):
        _report.emit("x", "X", ["a"], [{"a": 1, "speed": 2}], out_dir=tmp_path)
    with pytest.raises(ValueError, match="plain file stem"):
        _report.emit("../x", "X", ["a"], [], out_dir=tmp_path)


def test_env_variable_redirects_results(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(_report.ENV_RESULTS, str(tmp_path / "smoke"))
    _report.emit("r", "R", ["a"], [{"a": 1}])
    assert _report.load("r")["rows"] == [{"a": 1}]
    assert (tmp_path / "smoke" / "r.md").exists()
    with pytest.raises(FileNotFoundError, match="make bench"):
        _report.load("missing")


def test_cells() -> None:
    assert [_report.cell(v) for v in (None, 0.99912, 0.031, 3.14159, 42.0, 123.45, 12345.6)] == [
        "–",
        "1.00",
        "0.031",
        "3.14",
        "42.0",
        "123.5",
        "12,346",
    ]
    assert _report.cell("a|b") == "a\\|b"
    assert _report.cell(float("nan")) == "–"
