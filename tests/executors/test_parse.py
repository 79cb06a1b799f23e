"""Executor settings: one parser for names, mappings, configs and CLI flags; a registry of kinds."""

from __future__ import annotations

import pytest

from embedpipe.errors import ConfigError
from embedpipe.executors import (
    EXECUTORS,
    ExecutorConfig,
    LocalExecutor,
    executor_flags,
    get_executor,
    parse_executor,
    register_executor,
)


def test_parse_executor_merges_overrides_and_knows_none() -> None:
    assert parse_executor(None) is None
    assert parse_executor("none") is None
    assert parse_executor("local").name == "local"
    cfg = parse_executor({"name": "ray", "num_workers": 4}, {"address": "auto"})
    assert (cfg.name, cfg.num_workers, cfg.address) == ("ray", 4, "auto")
    assert parse_executor({"name": "ray"}, "none") is None
    assert parse_executor(None, executor_flags(None, "auto", None)).name == "ray"
    assert parse_executor(ExecutorConfig(name="ray"), {"num_workers": 2}).num_workers == 2
    assert executor_flags() is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"num_workers": 2}, r"^here: .* does not say which executor; add name"),
        (
            {"name": "rayy"},
            r"^here: bad executor settings .*unknown executor 'rayy'; did you mean 'ray'\?",
        ),
        ({"name": "ray", "gpus": 1}, r"^here: .*gpus.*Accepted keys: name, address"),
        (3, r"^here: expected an executor name \(local, ray, none\)"),
    ],
)
def test_bad_settings_name_where_they_came_from(value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_executor(value, what="here")


def test_a_registered_kind_is_usable_by_name_everywhere() -> None:
    @register_executor("inline-test")
    class Inline(LocalExecutor):
        name = "inline-test"

    try:
        assert "inline-test" in EXECUTORS
        assert parse_executor({"name": "inline-test"}).name == "inline-test"
        with get_executor("inline-test") as ex:
            assert isinstance(ex, Inline)
            assert [c.value for c in ex.map(lambda s: lambda t: t + s, [1, 2], shared=1)] == [2, 3]
    finally:
        EXECUTORS.unregister("inline-test")
    with pytest.raises(ConfigError, match="unknown executor 'inline-test'"):
        ExecutorConfig.parse("inline-test")


def test_executors_package_imports_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, embedpipe.executors, embedpipe.encoding.options; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
