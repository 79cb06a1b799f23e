"""CLIP / SigLIP dual encoders: both towers equal the model's own features, share one space."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from embedpipe.backbones import encoder_for, load_backbone, space_of
from embedpipe.errors import ConfigError

TEXTS = ["a red car", "a photo of a dog on the beach at sunset", "x"]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 255, (40 + 9 * i, 50, 3), dtype=np.uint8)) for i in range(3)
    ]


def _reference(folder, siglip: bool):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(folder).eval()
    pixels = AutoImageProcessor.from_pretrained(folder)(images=_images(), return_tensors="pt")
    tok = AutoTokenizer.from_pretrained(folder)
    if siglip:  # SigLIP's processor pads to max_length and passes input ids only
        ids = {
            "input_ids": tok(
                TEXTS, padding="max_length", max_length=32, truncation=True, return_tensors="pt"
            )["input_ids"]
        }
    else:
        enc = tok(TEXTS, padding=True, return_tensors="pt")
        ids = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    with torch.no_grad():
        img = model.get_image_features(pixel_values=pixels["pixel_values"])
        txt = model.get_text_features(**ids)
    # transformers 5 returns a model output whose pooler_output is the projected embedding.
    return (getattr(img, "pooler_output", img), getattr(txt, "pooler_output", txt))


@pytest.mark.parametrize("which", ["tiny_clip_dir", "tiny_siglip_dir"])
def test_towers_equal_get_image_and_text_features(which, request):
    folder = request.getfixturevalue(which)
    image = load_backbone(f"clip:{folder}")
    text = image.encoder_for("text")
    ref_img, ref_txt = _reference(folder, which == "tiny_siglip_dir")
    ours_img = image.encode(image.collate([image.preprocess(im) for im in _images()]))
    ours_txt = text.encode(text.collate([text.preprocess(t) for t in TEXTS]))
    torch.testing.assert_close(ours_img, ref_img, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours_txt, ref_txt, rtol=0, atol=1e-5)
    assert (image.modality, text.modality) == ("image", "text")
    assert image.space == text.space and image.fingerprint != text.fingerprint
    assert text.encoder_for("image") is image and encoder_for(image, "image") is image
    # Each tower's spec (as a store keeps it) reloads that tower, in the same space.
    again = load_backbone(json.loads(text.spec.to_json()))
    assert again.modality == "text" and again.space == image.space
    assert again.fingerprint == text.fingerprint


def test_normalised_towers_and_space_differs_between_models(tiny_clip_dir, tiny_siglip_dir):
    image = load_backbone(f"clip:{tiny_clip_dir}", normalize=True)
    text = load_backbone(f"clip:{tiny_clip_dir}", tower="text", normalize=True)
    assert text.space == image.space
    out = text.encode(text.collate(TEXTS))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))
    other = load_backbone(f"clip:{tiny_siglip_dir}")
    assert space_of(other) != space_of(image)
    raw = load_backbone(f"clip:{tiny_clip_dir}")
    assert raw.space != image.space  # normalisation changes the space
    # Options inline in the name (as a CLI --backbone or a pipeline file writes them).
    inline = load_backbone(f"clip:{tiny_clip_dir}?tower=text&normalize=true")
    assert inline.modality == "text" and inline.fingerprint == text.fingerprint


def test_single_tower_backbones_refuse_the_other_modality(tiny_bert_dir, tiny_vit_dir):
    enc = load_backbone(f"hf-text:{tiny_bert_dir}")
    assert enc.encoder_for("text") is enc and enc.space == enc.fingerprint
    with pytest.raises(ConfigError, match="encodes texts only, not image.*clip:"):
        enc.encoder_for("image")
    with pytest.raises(ConfigError, match="not a CLIP-style dual encoder"):
        load_backbone(f"clip:{tiny_vit_dir}")
    with pytest.raises(ConfigError, match="unknown tower 'audio'"):
        load_backbone(f"clip:{tiny_vit_dir}", tower="audio")
