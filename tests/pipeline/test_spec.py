"""Pipeline files: validation messages name the stage and the key; Python builds the same graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from embedpipe.errors import ConfigError
from embedpipe.pipeline import Pipeline, load_pipeline

from .conftest import write_yaml

BASE: dict[str, Any] = {
    "name": "demo",
    "datasets": {"digits": "builtin:digits"},
    "stages": {
        "features": {"kind": "encode", "dataset": "digits", "params": {"backbone": "resnet18"}},
        "logreg": {"kind": "train", "inputs": {"train": "features"}, "params": {"head": "logreg"}},
        "compare": {"kind": "evaluate", "inputs": {"heads": ["logreg"], "test": "features"}},
    },
}


def _with(path: Path, **changes: Any) -> Path:
    import copy

    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for p in parents:
            node = node[p]
        if value is None:
            del node[last]
        else:
            node[last] = value
    return write_yaml(path / "p.yaml", data)


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as e:
        load_pipeline(path)
    return str(e.value)


def test_valid_file_loads_in_order(tmp_path: Path) -> None:
    p = load_pipeline(_with(tmp_path))
    assert p.name == "demo"
    assert p.order() == ["features", "logreg", "compare"]
    assert p.stages["logreg"].inputs == {"train": ["features"]}
    assert p.stages["features"].datasets == {"data": "digits"}
    assert p.stages["features"].params.precision == "auto"  # defaults filled in (EncodeOptions')


def test_unknown_param_names_stage_key_and_line(tmp_path: Path) -> None:
    msg = _error(_with(tmp_path, stages__logreg__params={"head": "logreg", "C": 1.0}))
    assert "stage 'logreg'" in msg and "unknown key 'C'" in msg and "allowed: head, options" in msg
    assert "p.yaml line 16: " in msg  # the line of the key itself


def test_unknown_stage_key(tmp_path: Path) -> None:
    msg = _error(_with(tmp_path, stages__logreg__input={"train": "features"}))
    assert "stage 'logreg'" in msg and "unknown key 'input'" in msg


def test_unknown_top_level_key(tmp_path: Path) -> None:
    msg = _error(_with(tmp_path, stage={}))
    assert "unknown key 'stage'" in msg


def test_missing_input_names_stage_and_key(tmp_path: Path) -> None:
    msg = _error(_with(tmp_path, stages__logreg__inputs={"train": "featurez"}))
    assert "stage 'logreg'" in msg and "input 'train'" in msg and "'featurez'" in msg
    assert "stages: features, logreg, compare" in msg
    msg = _error(_with(tmp_path, stages__logreg__inputs=None))
    assert "stage 'logreg'" in msg and "missing input 'train'" in msg


def test_wrong_input_kind_and_unknown_role(tmp_path: Path) -> None:
    msg = _error(_with(tmp_path, stages__compare__inputs={"heads": ["logreg"], "test": "logreg"}))
    assert "input 'test' is 'logreg', a train stage; it must be a encode stage" in msg
    msg = _error(_with(tmp_path, stages__compare__inputs={"heads": ["logreg"], "tset": "features"}))
    assert "unknown input 'tset'" in msg and "heads, test" in msg


def test_missing_dataset(tmp_path: Path) -> None:
    msg = _error(_with(tmp_path, stages__features__dataset="digitz"))
    assert "stage 'features'" in msg and "dataset 'digitz' is not declared; datasets: digits" in msg
    msg = _error(_with(tmp_path, stages__features__dataset=None))
    assert "stage 'features'" in msg and "missing key 'dataset'" in msg


def test_unknown_kind_lists_kinds(tmp_path: Path) -> None:
    msg = _error(_with(tmp_path, stages__logreg__kind="trian"))
    assert (
        "stage 'logreg'" in msg
        and "unknown kind 'trian'" in msg
        and "encode, train, evaluate" in msg
    )


def test_self_cycle_names_stage_and_key() -> None:
    # The kinds' input rules leave self-reference as the only cycle a file can write...
    cyc = {
        "datasets": {"d": "builtin:digits"},
        "stages": {
            "e1": {"kind": "encode", "dataset": "d", "params": {"backbone": "x"}},
            "t": {"kind": "train", "inputs": {"train": "e1"}, "params": {"head": "logreg"}},
            "ev": {"kind": "evaluate", "inputs": {"heads": ["t", "ev"]}},
        },
    }
    with pytest.raises(ConfigError) as e:
        Pipeline.from_dict(cyc)
    assert (
        "stage 'ev'" in str(e.value) and "input 'heads'" in str(e.value) and "cycle" in str(e.value)
    )


def test_longer_cycle_is_named() -> None:
    # ...but the graph check is general: a longer loop is reported with its stages in order.
    from embedpipe.pipeline.graph import check_acyclic
    from embedpipe.pipeline.spec import Stage

    class S:  # the graph check only needs names and upstream lists
        def __init__(self, ups: list[str]) -> None:
            self.upstream = ups

    stages: dict[str, Stage] = {"a": S(["c"]), "b": S(["a"]), "c": S(["b"])}  # type: ignore[dict-item]
    with pytest.raises(ConfigError) as e:
        check_acyclic(stages)
    msg = str(e.value)
    assert "key 'inputs' makes a cycle" in msg
    assert "a -> b -> c -> a" in msg or "b -> c -> a -> b" in msg or "c -> a -> b -> c" in msg


def test_bad_yaml_and_bad_names(tmp_path: Path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("stages:\n  a: [unclosed\n")
    assert "not valid YAML" in _error(f)
    msg = _error(
        _with(tmp_path, stages__features__params={"backbone": "resnet18", "batch_size": 0})
    )
    assert "stage 'features'" in msg and "batch_size" in msg
    data = {
        "datasets": {"d": "builtin:digits"},
        "stages": {"a b": {"kind": "encode", "dataset": "d", "params": {"backbone": "x"}}},
    }
    with pytest.raises(ConfigError, match="stage name 'a b'"):
        Pipeline.from_dict(data)


def test_python_builder_matches_yaml(tmp_path: Path) -> None:
    from_file = load_pipeline(_with(tmp_path))
    p = Pipeline("demo", base_dir=tmp_path)
    p.dataset("digits", "builtin:digits")
    f = p.stage("features", "encode", dataset="digits", backbone="resnet18")
    h = p.stage("logreg", "train", inputs={"train": f}, head="logreg")
    p.stage("compare", "evaluate", inputs={"heads": [h], "test": f})
    assert p.order() == from_file.order()
    assert p.key("compare").key == from_file.key("compare").key
    with pytest.raises(ConfigError, match="stage 'x'.*unknown key 'bogus'"):
        p.stage("x", "train", inputs={"train": f}, head="knn", bogus=1)
        p.stages  # noqa: B018 - validation happens when the graph is used


def test_unknown_dataset_option_names_the_dataset_and_key(tmp_path: Path) -> None:
    p = load_pipeline(
        _with(tmp_path, datasets={"digits": {"source": "builtin:digits", "limt": 10}})
    )
    with pytest.raises(ConfigError, match=r"dataset 'digits': .*unknown option\(s\) \['limt'\]"):
        p.key("features")
