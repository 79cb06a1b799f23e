"""sentence-transformers folders: embedpipe's features equal ``SentenceTransformer.encode``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from embedpipe.backbones import load_backbone
from embedpipe.errors import ConfigError

st = pytest.importorskip("sentence_transformers")

TEXTS = [
    "A short one.",
    "The QUICK brown fox jumps over the lazy dog, twice over and then some more words.",
    "Ünïcödé text 🙂 12345",
    "x",
]
MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


def _save(
    folder: Path,
    bert_dir: Path,
    *,
    pooling="mean",
    include_prompt=True,
    dense=False,
    normalize=False,
    prompts=None,
    default_prompt_name=None,
    lower=False,
) -> Path:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense, Normalize, Pooling, Transformer

    torch.manual_seed(1)
    modules = [
        Transformer(str(bert_dir), max_seq_length=24, do_lower_case=lower),
        Pooling(16, pooling_mode=pooling, include_prompt=include_prompt),
    ]
    if dense:
        width = modules[1].get_embedding_dimension()
        modules.append(Dense(width, 12, activation_function=torch.nn.GELU()))
        modules.append(Dense(12, 12, activation_function=torch.nn.Identity(), use_residual=True))
    if normalize:
        modules.append(Normalize())
    model = SentenceTransformer(
        modules=modules, prompts=prompts, default_prompt_name=default_prompt_name, device="cpu"
    )
    model.save(str(folder))
    return folder


def _ours(enc, texts=TEXTS) -> torch.Tensor:
    return enc.encode(enc.collate([enc.preprocess(t) for t in texts]))


def _reference(folder: Path, texts=TEXTS, **kw) -> torch.Tensor:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    return model.encode(texts, convert_to_tensor=True, **kw).cpu()


@pytest.fixture(scope="module")
def st_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("st_models")


@pytest.mark.parametrize("mode", MODES)
def test_every_pooling_mode_equals_sentence_transformers(mode, tiny_bert_dir, st_root):
    folder = _save(st_root / mode, tiny_bert_dir, pooling=mode)
    enc = load_backbone(f"sentence-transformers:{folder}")
    assert enc.spec.kind == "sentence_transformers" and enc.spec.pooling == mode
    torch.testing.assert_close(_ours(enc), _reference(folder), rtol=0, atol=1e-5)


def test_concatenated_modes_dense_residual_normalize_and_lowercase(tiny_bert_dir, st_root):
    folder = _save(
        st_root / "dense",
        tiny_bert_dir,
        pooling=("cls", "mean"),
        dense=True,
        normalize=True,
        lower=True,
    )
    enc = load_backbone(f"st:{folder}")
    ours = _ours(enc)
    assert enc.dim == 12 and [m["type"] for m in enc.spec.options["modules"]] == [
        "Pooling",
        "Dense",
        "Dense",
        "Normalize",
    ]
    torch.testing.assert_close(ours, _reference(folder), rtol=0, atol=1e-5)
    torch.testing.assert_close(ours.norm(dim=1), torch.ones(len(TEXTS)))
    # Lowercasing is the model's (its tokenizer normaliser): case does not change features.
    torch.testing.assert_close(_ours(enc, ["HELLO"]), _ours(enc, ["hello"]))
    # The spec (as a store keeps it) rebuilds the same encoder.
    again = load_backbone(json.loads(enc.spec.to_json()))
    assert again.fingerprint == enc.fingerprint


def test_prompts_default_named_explicit_and_excluded_from_pooling(tiny_bert_dir, st_root):
    prompts = {"query": "query: ", "passage": "passage: "}
    folder = _save(st_root / "prompts", tiny_bert_dir, prompts=prompts, default_prompt_name="query")
    default = load_backbone(f"sentence-transformers:{folder}")
    assert default.spec.preprocessing["prompt"] == "query: "
    torch.testing.assert_close(_ours(default), _reference(folder), rtol=0, atol=1e-5)
    passage = load_backbone(f"sentence-transformers:{folder}", prompt_name="passage")
    torch.testing.assert_close(
        _ours(passage), _reference(folder, prompt_name="passage"), rtol=0, atol=1e-5
    )
    own = load_backbone(f"sentence-transformers:{folder}", prompt="Represent this: ")
    torch.testing.assert_close(
        _ours(own), _reference(folder, prompt="Represent this: "), rtol=0, atol=1e-5
    )
    # The prompt is part of the fingerprint, and counts in token lengths.
    assert len({default.fingerprint, passage.fingerprint, own.fingerprint}) == 3
    assert own.lengths(["a"])[0] > default.lengths(["a"])[0]
    with pytest.raises(ConfigError, match="prompt_name 'document2'.*passage"):
        load_backbone(f"sentence-transformers:{folder}", prompt_name="document2")

    excluded = _save(
        st_root / "no_prompt_pool",
        tiny_bert_dir,
        pooling="mean",
        include_prompt=False,
        prompts=prompts,
        default_prompt_name="query",
    )
    enc = load_backbone(f"sentence-transformers:{excluded}")
    torch.testing.assert_close(_ours(enc), _reference(excluded), rtol=0, atol=1e-5)


def test_minilm_folder_equals_sentence_transformers(minilm_path, minilm):
    enc = load_backbone(f"sentence-transformers:{minilm_path}")
    ours = _ours(enc)
    torch.testing.assert_close(ours, _reference(minilm_path), rtol=0, atol=1e-5)
    # The same features as the minilm preset (hf-text, mean pooling + normalisation).
    torch.testing.assert_close(ours, _ours(minilm), rtol=0, atol=1e-5)


def test_unreproducible_module_and_plain_folder_are_clear_errors(tiny_bert_dir, st_root):
    folder = _save(st_root / "odd", tiny_bert_dir)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append(
        {
            "idx": 2,
            "name": "2",
            "path": "2_LayerNorm",
            "type": "sentence_transformers.sentence_transformer.modules.LayerNorm",
        }
    )
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match="module '2'.*LayerNorm.*cannot\\s+reproduce"):
        load_backbone(f"sentence-transformers:{folder}")
    with pytest.raises(ConfigError, match="no modules.json.*hf-text"):
        load_backbone(f"sentence-transformers:{tiny_bert_dir}")


def test_hf_text_on_a_folder_with_a_default_prompt_warns(tiny_bert_dir, st_root, caplog):
    prompts = {"query": "query: "}
    folder = _save(
        st_root / "warn_prompt", tiny_bert_dir, prompts=prompts, default_prompt_name="query"
    )
    with caplog.at_level("WARNING", logger="embedpipe"):
        enc = load_backbone(f"hf-text:{folder}", pooling="mean")
    assert "prepends the prompt 'query: '" in caplog.text, caplog.text
    assert f"sentence-transformers:{folder}" in caplog.text
    # what it warns about: hf-text's features differ from SentenceTransformer.encode's
    assert not torch.allclose(_ours(enc), _reference(folder), atol=1e-3)
    caplog.clear()
    plain = _save(st_root / "no_prompt", tiny_bert_dir)
    with caplog.at_level("WARNING", logger="embedpipe"):
        load_backbone(f"hf-text:{plain}", pooling="mean")
    assert "prompt" not in caplog.text
