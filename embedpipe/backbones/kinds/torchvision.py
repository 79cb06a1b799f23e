"""The ``torchvision:<model>`` kind (and bare torchvision classifier names such as ``resnet18``)."""

from __future__ import annotations

from embedpipe.backbones.kind import BackboneKind, register_backbone_kind


def claims(name: str) -> str | None:
    """``name`` itself when it is a torchvision classification model, else ``None``."""
    from embedpipe.backbones.weights_import import classification_models

    return name if name in classification_models() else None


KIND = register_backbone_kind(
    BackboneKind(
        name="torchvision",
        spec_kind="torchvision",
        placeholder="<model>",
        example="torchvision:resnet50",
        description="a torchvision classifier's penultimate layer or a named node "
        "(weights: enum name, local .pth/.safetensors, or none)",
        load="embedpipe.backbones.torchvision_backbone:load_torchvision",
        from_spec="embedpipe.backbones.torchvision_backbone:torchvision_from_spec",
        claims=claims,
        bare_names="embedpipe.backbones.weights_import:classification_models",
        # Enum weights ids ("MobileNet_V2_Weights.IMAGENET1K_V1") do not hash the file.
        name_in_fingerprint=True,
        finetune_split="embedpipe.heads.finetuning.split:split_torchvision",
        finetune_rebuild="embedpipe.heads.finetuning.model:rebuild_torchvision",
    )
)
