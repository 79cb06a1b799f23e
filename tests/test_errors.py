"""Errors carry the item and the fix, read in Python's words or a command's flags, and survive
pickling (worker processes, Ray)."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import embedpipe
from embedpipe.errors import (
    Arg,
    ConfigError,
    FingerprintMismatchError,
    Fix,
    ItemError,
    StoreError,
)
from embedpipe.store.format import match_precision


def test_item_error_names_item_and_fix_and_pickles() -> None:
    e = pickle.loads(pickle.dumps(ItemError("img/1.jpg", "cannot decode image")))
    assert e.item_id == "img/1.jpg" and e.reason == "cannot decode image"
    assert "'img/1.jpg'" in str(e) and "on_error='skip'" in str(e)


def test_fingerprint_mismatch_pickles() -> None:
    e = pickle.loads(
        pickle.dumps(FingerprintMismatchError("store s.h5", "aaa", "bbb", "Re-encode."))
    )
    assert (e.expected, e.found) == ("aaa", "bbb")
    assert "aaa" in str(e) and "bbb" in str(e) and "Re-encode." in str(e)


def test_a_fix_reads_in_python_or_in_the_commands_flags_and_pickles() -> None:
    e = StoreError(
        "'a.h5' was encoded at precision 'fp16'.",
        Fix(
            " Pass ",
            match_precision("fp16@openvino-2026.4.1"),
            allow_mixed_precision=True,
            does=".",
        ),
    )
    assert str(e) == (
        "'a.h5' was encoded at precision 'fp16'. Pass precision='fp16', runtime='openvino', or "
        "allow_mixed_precision=True."
    )
    flags = {"precision": "--precision", "runtime": "--runtime"}
    assert e.worded(flags) == (
        "'a.h5' was encoded at precision 'fp16'. Pass --precision fp16 --runtime openvino."
    )
    assert e.worded({"precision": "--precision"}) == "'a.h5' was encoded at precision 'fp16'."
    back = pickle.loads(pickle.dumps(e))
    assert str(back) == str(e) and back.worded(flags) == e.worded(flags)
    item = pickle.loads(pickle.dumps(ItemError("x", "empty text")))
    assert item.worded({"on_error": "--on-error"}).endswith(
        "Fix or remove it, or pass --on-error skip to skip bad items and record them in the store."
    )
    assert item.worded({}) == "item 'x': empty text. Fix or remove it."


def test_a_named_argument_keeps_its_python_form_without_a_flag() -> None:
    e = ConfigError("no column ", Arg("label_column", "lable"), "; did you mean 'label'?")
    assert str(e) == "no column label_column='lable'; did you mean 'label'?"
    assert e.worded({}) == str(e)
    assert e.worded({"label_column": "--label-column"}) == (
        "no column --label-column 'lable'; did you mean 'label'?"
    )


def test_fingerprint_mismatch_hint_carries_a_fix() -> None:
    hint = ("Write to another file", Fix(", or pass ", overwrite=True), ".")
    e = pickle.loads(pickle.dumps(FingerprintMismatchError("store s.h5", "aaa", "bbb", hint)))
    assert str(e).endswith("found bbb). Write to another file, or pass overwrite=True.")
    assert e.worded({"overwrite": "--overwrite"}).endswith("or pass --overwrite.")


def test_no_message_spells_a_flag_beside_an_argument() -> None:
    """Error messages name flags through Arg / Fix, never as "(CLI: --flag)" text."""
    root = Path(embedpipe.__file__).parent
    hits = []
    for p in root.rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            name = getattr(node, "func", None)
            name = getattr(name, "id", getattr(name, "attr", ""))
            if isinstance(node, ast.Call) and name.endswith("Error"):
                texts = [c.value for c in ast.walk(node) if isinstance(c, ast.Constant)]
                if any(isinstance(t, str) and "(CLI: " in t for t in texts):
                    hits.append(f"{p.relative_to(root)}:{node.lineno}")
    assert hits == []
