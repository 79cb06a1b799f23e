"""Shallow fine-tuning: split, activation cache, cached == recomputed training, export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from embedpipe.backbones import load_backbone
from embedpipe.data import subset
from embedpipe.errors import ConfigError, FingerprintMismatchError, StoreError
from embedpipe.heads import (
    cache_activations,
    evaluate_head,
    finetune,
    load_finetuned,
    split_backbone,
    train_head,
)
from embedpipe.heads.finetuning import (
    ActivationEncoder,
    FineTunedModel,
    activation_info,
    load_activations,
)
from embedpipe.store import FeatureStore

K = 3  # MobileNetV2's last 3 of 19 blocks: features.16 (inverted residual) .. features.18 (1x1 conv)


def _batch(encoder, source, n: int):
    return encoder.collate([encoder.preprocess(source.load(i)) for i in range(n)])


@pytest.fixture(scope="module")
def mnist_cache(mobilenet, mnist, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("act")
    split = split_backbone(mobilenet, K)
    return {
        "train": cache_activations(split, mnist.train_source, folder / "train.h5", num_workers=0),
        "test": cache_activations(split, mnist.test_source, folder / "test.h5", num_workers=0),
    }


def test_split_reproduces_the_backbone_features(mobilenet, mnist) -> None:
    split = split_backbone(mobilenet, K)
    assert (split.split_at, split.n_blocks, split.activation_shape, split.feature_dim) == (
        "features.16",
        19,
        (160, 2, 2),
        1280,
    )
    x = _batch(mobilenet, mnist.train_source, 8)
    with torch.no_grad():
        ours = split.top.eval()(split.bottom(x))
    np.testing.assert_allclose(ours.numpy(), mobilenet.encode(x).numpy(), rtol=1e-4, atol=1e-5)
    # the encoder itself is untouched (its model was copied)
    assert not any(p.requires_grad for p in mobilenet.model.parameters())

    resnet = load_backbone("torchvision:resnet18", weights=None, resize_size=64, crop_size=64)
    rsplit = split_backbone(resnet, 2)
    assert rsplit.split_at == "layer4.0" and rsplit.activation_shape == (256, 4, 4)
    xr = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        np.testing.assert_allclose(
            rsplit.top.eval()(rsplit.bottom(xr)).numpy(),
            resnet.encode(xr).numpy(),
            rtol=1e-4,
            atol=1e-5,
        )


def test_split_refuses_what_it_cannot_do(mobilenet, torch_home) -> None:
    with pytest.raises(ConfigError, match="use 1..18"):
        split_backbone(mobilenet, 19)
    with pytest.raises(ConfigError, match="without layer="):
        split_backbone(
            load_backbone(
                "torchvision:mobilenet_v2",
                weights=None,
                layer="features.10",
                resize_size=32,
                crop_size=32,
            ),
            2,
        )


def test_activation_store_records_shape_and_its_own_fingerprint(
    mobilenet, mnist, mnist_cache
) -> None:
    with FeatureStore(mnist_cache["train"]) as fs:
        info = activation_info(fs)
        assert info["shape"] == [160, 2, 2] and fs.dim == 640 and len(fs) == 600
        assert (
            info["split"]["split_at"] == "features.16"
            and info["split"]["base_fingerprint"] == mobilenet.fingerprint
        )
        assert fs.backbone["layer"] == "input:features.16" and fs.backbone["pooling"] == "none"
        other_split = ActivationEncoder(split_backbone(mobilenet, 4)).fingerprint
        assert fs.fingerprint not in (mobilenet.fingerprint, other_split)
        fingerprint = fs.fingerprint
        created = fs.provenance["created"]
    # calling again reuses the store: nothing is recomputed
    again = cache_activations(
        split_backbone(mobilenet, K), mnist.train_source, mnist_cache["train"], num_workers=0
    )
    with FeatureStore(again) as fs:
        assert (
            fs.fingerprint == fingerprint and fs.provenance["created"] == created and len(fs) == 600
        )
    acts, labels, shape, _ = load_activations(mnist_cache["train"], split_backbone(mobilenet, K))
    assert acts.shape == (600, 160, 2, 2) and shape == (160, 2, 2)
    with pytest.raises(FingerprintMismatchError, match="cached activations"):
        load_activations(mnist_cache["train"], split_backbone(mobilenet, 4))
    with pytest.raises(StoreError, match="holds no cached activations"):
        load_activations(mnist.train, split_backbone(mobilenet, K))


def test_training_from_cached_activations_equals_recomputing_them(
    mobilenet, mnist, tmp_path: Path
) -> None:
    part = subset(mnist.train_source, np.arange(96))
    cached = cache_activations(
        split_backbone(mobilenet, K), part, tmp_path / "part.h5", num_workers=0
    )
    a = finetune(split_backbone(mobilenet, K), cached, epochs=2, batch_size=32, seed=3)
    b = finetune(split_backbone(mobilenet, K), part, epochs=2, batch_size=32, seed=3)
    assert a.model.training_info["from_cache"] and not b.model.training_info["from_cache"]
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=1e-6)
    assert [h["train_loss"] for h in a.history] == pytest.approx(
        [h["train_loss"] for h in b.history], abs=1e-6
    )
    c = finetune(split_backbone(mobilenet, K), cached, epochs=2, batch_size=32, seed=4)
    assert not torch.equal(c.model.state_dict()["head.weight"], sa["head.weight"])


def test_finetuning_the_top_blocks_beats_the_frozen_linear_probe(
    mobilenet, mnist, mnist_cache, tmp_path: Path
) -> None:
    probe = evaluate_head(train_head(mnist.train, "logreg"), mnist.test).best.mean("accuracy")
    split = split_backbone(mobilenet, K)
    result = finetune(split, mnist_cache["train"], val=mnist_cache["test"], epochs=6, seed=0)
    last = result.history[-1]["val_accuracy"]
    assert last >= probe + 0.03, (probe, [h["val_accuracy"] for h in result.history])

    # export: one module, safetensors + JSON, predicts raw images after a pickle-free reload
    folder = result.model.save(tmp_path / "ft")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["classes"] == [str(i) for i in range(10)] and cfg["split"]["k"] == K
    assert cfg["base_backbone"]["name"] == "mobilenet_v2" and cfg["training"]["from_cache"]
    model = load_finetuned(folder)
    items = [mnist.test_source.load(i) for i in range(len(mnist.test_source))]
    np.testing.assert_allclose(
        model.predict_logits(items), result.model.predict_logits(items), rtol=1e-4, atol=1e-4
    )
    acc = (model.predict(items) == mnist.yte).mean()
    assert acc == pytest.approx(
        max(h["val_accuracy"] for h in result.history), abs=1e-9
    )  # best epoch kept
    assert model.predict_names(items[:3]) == [str(v) for v in model.predict(items[:3])]


def test_bad_fine_tuned_model_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a saved fine-tuned model"):
        load_finetuned(tmp_path)
    (tmp_path / "config.json").write_text('{"format": "other"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="not an embedpipe fine-tuned model config"):
        load_finetuned(tmp_path)


def test_text_encoder_last_layer_from_cache_equals_recomputed(
    minilm, rotten, tmp_path: Path
) -> None:
    part = subset(rotten.train_source, np.arange(48))
    split = split_backbone(minilm, 1)
    assert split.split_at == "encoder.layer.5" and split.n_blocks == 6
    batch = _batch(minilm, part, 6)
    with torch.no_grad():
        np.testing.assert_allclose(
            split.top.eval()(split.bottom(batch)).numpy(), minilm.encode(batch).numpy(), atol=1e-5
        )
    cached = cache_activations(split, part, tmp_path / "txt.h5", num_workers=0)
    with FeatureStore(cached) as fs:
        seq, width = activation_info(fs)["shape"]
        assert width == 385 and fs.dim == seq * width  # hidden states + the attention mask
    a = finetune(split_backbone(minilm, 1), cached, epochs=1, batch_size=16, seed=0)
    b = finetune(split_backbone(minilm, 1), part, epochs=1, batch_size=16, seed=0)
    for k, v in a.model.state_dict().items():
        torch.testing.assert_close(v, b.model.state_dict()[k], rtol=0, atol=1e-6)
    folder = a.model.save(tmp_path / "ft")
    texts = [part.load(i) for i in range(8)]
    np.testing.assert_allclose(
        load_finetuned(folder).predict_logits(texts), a.model.predict_logits(texts), atol=1e-5
    )


def test_fine_tuning_follows_the_trunk_a_kind_declares_not_its_name(tmp_path: Path) -> None:
    """A plugin kind that declares ``trunk="cnn-blocks"`` fine-tunes, saves and reloads like
    torchvision's; one that declares no trunk is refused by name."""
    import dataclasses

    from PIL import Image

    from embedpipe.backbones.kind import BACKBONE_KINDS, BackboneKind, register_backbone_kind

    def load(target: str, **kw):
        enc = load_backbone(f"torchvision:{target}", weights=None, resize_size=32, crop_size=32)
        enc.spec = dataclasses.replace(enc.spec, kind="my_cnn")
        return enc

    def from_spec(spec, **kw):
        return load(spec.name)

    for name, trunk in (("my-cnn", "cnn-blocks"), ("my-flat", None)):
        register_backbone_kind(
            BackboneKind(name, name.replace("-", "_"), load=load, from_spec=from_spec, trunk=trunk)
        )
    try:
        enc = load_backbone("my-cnn:resnet18")
        split = split_backbone(enc, 1)
        assert (split.trunk, split.split_at, split.sequence) == ("cnn-blocks", "layer4.1", False)
        tuned = FineTunedModel(split, torch.nn.Linear(split.feature_dim, 2), ["a", "b"])
        tuned.save(tmp_path / "ft")
        image = Image.new("RGB", (40, 40), (200, 10, 10))
        reloaded = FineTunedModel.load(tmp_path / "ft")
        np.testing.assert_allclose(
            reloaded.predict_logits([image]), tuned.predict_logits([image]), rtol=1e-5, atol=1e-6
        )
        flat = load_backbone("my-cnn:resnet18")
        flat.spec = dataclasses.replace(flat.spec, kind="my_flat")
        with pytest.raises(ConfigError, match="not 'my_flat' \\('resnet18'\\)"):
            split_backbone(flat, 1)
    finally:
        for name in ("my-cnn", "my-flat"):
            BACKBONE_KINDS.unregister(name)
