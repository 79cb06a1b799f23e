"""The backbone-kind registry: listing without torch, did-you-mean, a new kind in one module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from embedpipe.backbones import load_backbone
from embedpipe.backbones.kind import BACKBONE_KINDS, BackboneKind, register_backbone_kind
from embedpipe.backbones.registry import backbone_table
from embedpipe.errors import ConfigError, NotFoundError


def test_listing_imports_no_torch_and_shows_examples_and_dims():
    # CPU time, not wall time: the test machine's cores are shared (under a second either way).
    code = (
        "import sys, time; t = time.process_time()\n"
        "from embedpipe.backbones.registry import backbone_table\n"
        "rows = backbone_table()\n"
        "print(time.process_time() - t, 'torch' in sys.modules, len(rows))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, torch_loaded, n = out.stdout.split()
    assert torch_loaded == "False" and float(seconds) < 1.0 and int(n) >= 9
    rows = {r["name"]: r for r in backbone_table()}
    assert rows["minilm"]["dim"] == 384 and rows["mobilenet_v2-imagenet"]["dim"] == 1280
    for name in (
        "timm:<model>",
        "clip:<hub id or folder>",
        "sentence-transformers:<hub id or folder>",
    ):
        assert rows[name]["example"].startswith(name.split(":")[0] + ":")


def test_unknown_names_are_not_found_with_did_you_mean():
    with pytest.raises(NotFoundError, match="did you mean 'resnet50'"):
        load_backbone("resnt50")
    with pytest.raises(ConfigError, match="did you mean 'minilm'"):
        load_backbone("minilmm")
    with pytest.raises(NotFoundError, match="unknown backbone kind 'tim'; did you mean 'timm'"):
        BACKBONE_KINDS.get("tim")
    with pytest.raises(ConfigError, match="bad backbone option 'x'"):
        load_backbone("clip:folder?tower=text&x")


def test_a_new_kind_is_one_registration(vectors_dir):
    def load(target, *, scale=1.0, **kw):
        return load_backbone(f"word-vectors:{vectors_dir / target}", normalize=scale > 0)

    register_backbone_kind(
        BackboneKind(
            "demo-vec",
            "word_vectors_demo",
            load=load,
            from_spec="embedpipe.backbones.word_vectors:word_vectors_from_spec",
            example="demo-vec:glove.txt",
        )
    )
    try:
        enc = load_backbone("demo-vec:glove.txt?scale=2")
        assert enc.spec.options == {"normalize": True}
        assert any(r["name"] == "demo-vec:<name>" for r in backbone_table())
    finally:
        BACKBONE_KINDS.unregister("demo-vec")
