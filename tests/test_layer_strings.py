"""The layers hold for imports written as strings too: a ``"embedpipe.pkg.module:attr"`` hook
or lazy factory in a lower package would import an upper one at run time, which the import
scan of tests/test_layers.py cannot see."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from .test_layers import LAYERS, PKG

#: A module below an embedpipe package (``embedpipe.heads.knn``), optionally with ``:attribute``
#: (a lazy import); bare ``embedpipe.heads`` is an entry-point group name, not an import.
_MODULE_STRING = re.compile(
    r"^embedpipe\.([a-z_]+)((\.[a-z_][a-z0-9_]*)+(:[A-Za-z_][\w.]*)?|:[A-Za-z_][\w.]*)$"
)


def _upward_strings(text: str, rel: Path) -> list[str]:
    own = rel.parts[0].removesuffix(".py")
    bad = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = _MODULE_STRING.match(node.value)
            if m and m[1] in LAYERS and own in LAYERS and LAYERS[m[1]] > LAYERS[own]:
                bad.append(f"{rel}:{node.lineno} names {node.value!r} ({own} < {m[1]})")
    return bad


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_no_upward_module_string(path: Path) -> None:
    bad = _upward_strings(path.read_text(), path.relative_to(PKG))
    assert not bad, "\n".join(bad)


def test_the_scan_sees_a_hook_string_and_not_a_plugin_group() -> None:
    text = 'HOOK = "embedpipe.heads.finetuning.split:split_hf_text"\nGROUP = "embedpipe.heads"\n'
    assert _upward_strings(text, Path("backbones/kinds/hf_text.py")) == [
        "backbones/kinds/hf_text.py:1 names 'embedpipe.heads.finetuning.split:split_hf_text' "
        "(backbones < heads)"
    ]
