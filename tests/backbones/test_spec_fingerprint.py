"""A stored spec's fingerprint depends on the spec alone, not on which kinds are registered."""

from __future__ import annotations

import json

from embedpipe.backbones.base import BackboneSpec
from embedpipe.backbones.kind import BACKBONE_KINDS


def _spec(name: str) -> BackboneSpec:
    return BackboneSpec(
        "torchvision",
        name,
        weights="IMAGENET1K_V1",
        weights_id="MobileNet_V2_Weights.IMAGENET1K_V1",
        modality="image",
        name_in_fingerprint=True,
    )


def test_the_name_flag_travels_in_the_spec_not_the_registry() -> None:
    spec = _spec("mobilenet_v2")
    stored = json.loads(spec.to_json())
    before = BackboneSpec.from_dict(stored).fingerprint()
    kind = BACKBONE_KINDS.get("torchvision")
    BACKBONE_KINDS.unregister("torchvision")
    try:  # a process where the kind is not (yet) registered computes the same fingerprint
        assert BackboneSpec.from_dict(stored).fingerprint() == before == spec.fingerprint()
    finally:
        BACKBONE_KINDS.register("torchvision", kind)
    assert _spec("resnet18").fingerprint() != before  # the name counts where the flag says so
    other = BackboneSpec("hf_text", "/a/model", weights_id="sha256:x", modality="text")
    moved = BackboneSpec("hf_text", "/b/model", weights_id="sha256:x", modality="text")
    assert other.fingerprint() == moved.fingerprint() and "name_in_fingerprint" not in (
        other.to_dict()
    )


def test_a_spec_stored_before_the_flag_keeps_its_fingerprint() -> None:
    stored = json.loads(_spec("mobilenet_v2").to_json())
    del stored["name_in_fingerprint"]  # what a store written before the flag holds
    assert BackboneSpec.from_dict(stored).fingerprint() == _spec("mobilenet_v2").fingerprint()
