"""timm models: features equal timm's own forward; weights from a local file, tags or none."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from embedpipe.backbones import load_backbone
from embedpipe.errors import ConfigError

timm = pytest.importorskip("timm")


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 255, (70, 90, 3), dtype=np.uint8)),
        Image.fromarray(rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)).convert("L"),
    ]


@pytest.mark.parametrize(
    ("name", "model_args", "family"),
    [("convnext_atto", {}, "cnn"), ("vit_tiny_patch16_224", {"img_size": 64}, "transformer")],
)
def test_local_weights_file_equals_timm_forward(name, model_args, family, tmp_path):
    from safetensors.torch import save_file
    from timm.data import create_transform, resolve_data_config

    torch.manual_seed(3)
    model = timm.create_model(name, pretrained=False, **model_args).eval()
    path = tmp_path / f"{name}.safetensors"
    save_file(model.state_dict(), str(path))
    enc = load_backbone(
        f"timm:{name}", weights=str(path), model_args=model_args, input_size=(3, 64, 64)
    )
    assert enc.family == family and enc.spec.weights_id.startswith("sha256:")
    # The data config is recorded in the spec (the store's provenance).
    config = resolve_data_config({"input_size": (3, 64, 64)}, model=model)
    assert enc.spec.preprocessing == json.loads(json.dumps(config))
    transform = create_transform(**config)
    images = _images()
    x = torch.stack([transform(im.convert("RGB")) for im in images])
    with torch.no_grad():
        reference = model.forward_head(model.forward_features(x), pre_logits=True)
    pre = pickle.loads(pickle.dumps(enc.preprocess))
    ours = enc.encode(enc.collate([pre(im) for im in images]))
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)
    # Moving the file keeps the fingerprint (content hash); the spec reloads.
    moved = tmp_path / "moved.safetensors"
    path.rename(moved)
    again = load_backbone(enc.spec.to_dict(), weights=str(moved))
    assert again.fingerprint == enc.fingerprint


def test_torch_save_file_stage_features_and_random_init(tmp_path):
    torch.manual_seed(0)
    model = timm.create_model("convnext_atto", pretrained=False).eval()
    path = tmp_path / "convnext.pth"
    torch.save(model.state_dict(), path)
    stage = load_backbone(
        "timm:convnext_atto",
        weights=str(path),
        layer="stages.1",
        pooling="max",
        input_size=(3, 64, 64),
    )
    x = torch.stack([stage.preprocess(im) for im in _images()])
    with torch.no_grad():
        maps = model.forward_intermediates(x, indices=[1], intermediates_only=True)[0]
    torch.testing.assert_close(stage.encode(x), maps.amax(dim=(2, 3)), rtol=0, atol=1e-5)
    assert stage.spec.layer == "stages.1" and stage.dim == 80
    a = load_backbone("timm:convnext_atto", weights=None, input_size=(3, 32, 32), seed=1)
    b = load_backbone("timm:convnext_atto", weights=None, input_size=(3, 32, 32), seed=2)
    assert a.fingerprint != b.fingerprint
    assert load_backbone(a.spec.to_dict()).fingerprint == a.fingerprint


def test_bad_names_weights_and_options_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="unknown timm model 'convnxt_atto'"):
        load_backbone("timm:convnxt_atto", weights=None)
    with pytest.raises(ConfigError, match="unknown timm option"):
        load_backbone("timm:convnext_atto", weights=None, crop=3)
    with pytest.raises(ConfigError, match="stage 'stages.9'"):
        load_backbone("timm:convnext_atto", weights=None, layer="stages.9")
    bad = tmp_path / "resnet.safetensors"
    from safetensors.torch import save_file

    save_file(timm.create_model("resnet18").state_dict(), str(bad))
    with pytest.raises(ConfigError, match="does not fit timm's convnext_atto"):
        load_backbone("timm:convnext_atto", weights=str(bad))
    with pytest.raises(ConfigError, match="pretrained weights of 'convnext_atto.d2_in1k'"):
        load_backbone("timm:convnext_atto.d2_in1k")  # not in the (offline) hub cache


def test_reduced_scale_jpeg_decoding_is_in_the_spec() -> None:
    enc = load_backbone("timm:resnet18", weights=None, input_size=(3, 64, 64))
    assert enc.spec.options["draft"] is True
    # timm's eval transform resizes the shorter side to floor(64 / crop_pct) before its crop
    crop_pct = enc.preprocess.data_config["crop_pct"]
    assert enc.preprocess.decode_min_side == int(64 // crop_pct)
    full = load_backbone("timm:resnet18", weights=None, input_size=(3, 64, 64), draft=False)
    assert full.fingerprint != enc.fingerprint and "draft" not in full.spec.options
    assert full.preprocess.decode_min_side is None
    # A spec from before the option (no "draft"): decoded at full size, as it was made.
    assert load_backbone(full.spec.to_dict()).preprocess.draft is False
    assert load_backbone(enc.spec.to_dict()).fingerprint == enc.fingerprint
    with pytest.raises(ConfigError, match="draft='yes'"):
        load_backbone("timm:resnet18", weights=None, draft="yes")
