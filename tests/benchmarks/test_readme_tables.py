"""README benchmark tables are generated from the committed result files, never typed."""

from __future__ import annotations

from pathlib import Path

import _report
import readme_tables


def _readme(*names: str) -> str:
    parts = ["# Title", "", "Some prose."]
    for n in names:
        parts += ["", f"<!-- bench:{n} -->", "stale text", f"<!-- /bench:{n} -->"]
    return "\n".join(parts) + "\n"


def test_generate_puts_the_table_from_json_between_the_markers(tmp_path: Path) -> None:
    _report.emit(
        "enc", "Enc", ["model", "items/s"], [{"model": "m", "items/s": 101.26}], out_dir=tmp_path
    )
    text = _readme("enc")
    assert readme_tables.check(text, tmp_path)  # stale text is reported
    new = readme_tables.generate(text, tmp_path)
    assert "| model | items/s |\n|---|---|\n| m | 101.3 |\n" in new
    assert new.startswith("# Title\n\nSome prose.\n")
    assert readme_tables.check(new, tmp_path) == []
    assert readme_tables.generate(new, tmp_path) == new  # idempotent


def test_check_catches_a_hand_edited_number(tmp_path: Path) -> None:
    _report.emit("enc", "Enc", ["items/s"], [{"items/s": 101.26}], out_dir=tmp_path)
    good = readme_tables.generate(_readme("enc"), tmp_path)
    bad = good.replace("| 101.3 |", "| 120.0 |")
    problems = readme_tables.check(bad, tmp_path)
    assert len(problems) == 1 and "'enc'" in problems[0] and "--write" in problems[0]


def test_missing_result_and_unbalanced_markers(tmp_path: Path) -> None:
    new = readme_tables.generate(_readme("gpu"), tmp_path)
    assert "Not measured yet" in new and readme_tables.check(new, tmp_path) == []
    broken = "<!-- bench:a -->\nx\n"
    assert "1 opening and 0 closing" in readme_tables.check(broken, tmp_path)[0]


def test_main_check_exit_codes(tmp_path: Path) -> None:
    _report.emit("enc", "Enc", ["a"], [{"a": 1}], out_dir=tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(_readme("enc"))
    args = ["--readme", str(readme), "--results", str(tmp_path)]
    assert readme_tables.main(["--check", *args]) == 1
    assert readme_tables.main(["--write", *args]) == 0
    assert readme_tables.main(["--check", *args]) == 0


def test_the_readme_matches_the_committed_results() -> None:
    text = readme_tables.README.read_text()
    names = readme_tables.blocks(text)
    assert {"encode", "encode-goals", "heads-accuracy", "gpu-encode"} <= set(names), (
        f"README bench blocks: {names}"
    )
    assert readme_tables.check(text) == []
