"""Stage keys: content, not paths; what enters a key and what does not."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from embedpipe.pipeline import Pipeline
from embedpipe.pipeline.keys import canonical_json, content_param, local_path, stage_key

BASE: dict[str, Any] = {
    "name": "k",
    "datasets": {"d": {"source": "builtin:digits", "limit": 30}},
    "stages": {
        "enc": {
            "kind": "encode",
            "dataset": "d",
            "params": {"backbone": "resnet18", "weights": "w/file.pth"},
        },
        "head": {"kind": "train", "inputs": {"train": "enc"}, "params": {"head": "logreg"}},
        "ev": {"kind": "evaluate", "inputs": {"heads": ["head"], "test": "enc"}},
    },
}


def _keys(data: dict[str, Any], base: Path) -> dict[str, str]:
    return {
        n: k.key for n, k in Pipeline.from_dict(copy.deepcopy(data), base_dir=base).keys().items()
    }


def test_canonical_json_and_key_are_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, 2.5]}) == '{"a":[1,2.5],"b":1}'
    assert stage_key({"x": 1, "y": {"b": 2, "a": 1}}) == stage_key({"y": {"a": 1, "b": 2}, "x": 1})
    assert stage_key({"x": 1}) != stage_key({"x": 1.0})  # an int and a float are different params


def test_local_file_params_enter_keys_by_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "w").mkdir(parents=True)
    (a / "w" / "file.pth").write_bytes(b"weights-1")
    keys_a = _keys(BASE, a)
    shutil.copytree(a, b)  # another folder, same content: same keys
    assert _keys(BASE, b) == keys_a
    (b / "w" / "file.pth").write_bytes(b"weights-2")  # same path, new content: new keys downstream
    keys_b = _keys(BASE, b)
    assert all(keys_b[n] != keys_a[n] for n in keys_a)
    assert content_param("w/file.pth", a)["content"] != content_param("w/file.pth", b)["content"]  # type: ignore[index]


def test_registry_names_are_not_paths(tmp_path: Path) -> None:
    (tmp_path / "minilm").write_text("not a model")
    assert local_path("minilm", tmp_path) is None  # a bare name is never a file
    assert local_path("./minilm", tmp_path) == tmp_path / "minilm"
    assert local_path("hf-text:models/x", tmp_path) is None  # does not exist
    (tmp_path / "models" / "x").mkdir(parents=True)
    (tmp_path / "models" / "x" / "config.json").write_text("{}")
    assert content_param("hf-text:models/x", tmp_path)["scheme"] == "hf-text:"  # type: ignore[index]


def test_names_enter_keys_only_where_they_are_shown(tmp_path: Path) -> None:
    before = _keys(BASE, tmp_path)
    data = copy.deepcopy(BASE)
    data["stages"]["encoder"] = data["stages"].pop("enc")
    data["stages"]["head"]["inputs"] = {"train": "encoder"}
    data["stages"]["ev"]["inputs"] = {"heads": ["head"], "test": "encoder"}
    after = _keys(data, tmp_path)
    assert after["encoder"] == before["enc"] and after["head"] == before["head"]
    assert after["ev"] != before["ev"]  # evaluate shows its inputs' names: renaming re-renders it


def test_seed_and_run_only_params(tmp_path: Path) -> None:
    before = _keys(BASE, tmp_path)
    data = copy.deepcopy(BASE)
    data["stages"]["enc"]["params"].update(batch_size=8, device="cpu", num_workers=0)
    assert _keys(data, tmp_path) == before  # how a stage runs is not what it makes
    data["seed"] = 1
    assert all(v != before[k] for k, v in _keys(data, tmp_path).items())
