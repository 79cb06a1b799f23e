"""One text path: a store's rows and ``encode_items`` of the same texts are the same numbers,
for every text encoder kind (checked, tokenised once, sorted by token count, batched alike)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embedpipe.backbones import BackboneSpec, TextEncoder, as_text_encoder, load_backbone
from embedpipe.data import ArraySource, open_source
from embedpipe.encoding import encode, encode_items
from embedpipe.errors import ConfigError, ItemError
from embedpipe.store import FeatureStore

from .conftest import WORD_VECTORS, write_vectors_text

WORDS = list(WORD_VECTORS)
# Lengths 1..9 tokens in a shuffled order, with ties, and one empty text (skipped).
TEXTS = [
    " ".join(WORDS[(3 * i + k) % len(WORDS)] for k in range(1 + (5 * i) % 9)) for i in range(22)
]
TEXTS[7] = "   "


@pytest.fixture(
    params=["minilm", "hf-text", "sentence-transformers", "clip", "siglip", "word-vectors"]
)
def text_encoder(request, tmp_path: Path) -> TextEncoder:
    kind = request.param
    if kind == "minilm":
        return request.getfixturevalue("minilm")
    if kind == "hf-text":
        return load_backbone(f"hf-text:{request.getfixturevalue('tiny_bert_dir')}")
    if kind == "sentence-transformers":
        path = request.getfixturevalue("minilm_path")
        return load_backbone(f"sentence-transformers:{path}", prompt="query: ")
    if kind in ("clip", "siglip"):
        folder = request.getfixturevalue(f"tiny_{kind}_dir")
        return load_backbone(f"clip:{folder}", tower="text")
    vec = write_vectors_text(tmp_path / "vec.txt", WORD_VECTORS, header=False)
    return load_backbone(f"word-vectors:{vec}")


def test_a_store_and_encode_items_give_the_same_rows(tmp_path: Path, text_encoder) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\n" + "".join(f"{t},{'ab'[i % 2]}\n" for i, t in enumerate(TEXTS)))
    src = open_source(str(csv))
    res = encode(
        src, text_encoder, tmp_path / "s.h5", batch_size=4, num_workers=0, on_error="skip",
        progress=False,
    )  # fmt: skip
    good = [i for i, t in enumerate(TEXTS) if t.strip()]
    assert (res.n_encoded, res.n_skipped) == (len(good), 1)
    direct = encode_items(text_encoder, [TEXTS[i] for i in good], batch_size=4)
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert fs.ids.tolist() == [str(src.ids[i]) for i in good]
        np.testing.assert_array_equal(fs.features, direct)
        assert "empty text" in fs.errors[0][1]
    # encode_items sorts by token count too: the rows do not depend on the items' order.
    flipped = encode_items(text_encoder, [TEXTS[i] for i in reversed(good)], batch_size=4)
    np.testing.assert_allclose(flipped[::-1], direct, rtol=1e-5, atol=1e-6)


def test_the_text_path_checks_each_text_once_and_names_the_bad_one(minilm) -> None:
    with pytest.raises(ItemError, match="#1.*empty text"):
        encode_items(minilm, ["fine", " "])
    assert minilm.lengths(["a cat", "a"]) == [
        int(t.shape[-1]) for t in minilm.tokenize(["a cat", "a"])
    ]
    with pytest.raises(ValueError, match="empty text"):
        minilm.lengths(["ok", ""])


def test_an_image_encoder_is_not_a_text_encoder() -> None:
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    assert not isinstance(enc, TextEncoder)
    with pytest.raises(ConfigError, match="encodes images, not texts"):
        as_text_encoder(enc)
    with pytest.raises(ConfigError, match="counts tokens of a text encoder"):
        enc.lengths(["a"])  # type: ignore[attr-defined]


class Letters:
    """A text encoder that does not tokenise (as a plugin's may): letter counts."""

    dim, modality, precision = 3, "text", "fp32"
    device = torch.device("cpu")

    def __init__(self) -> None:
        self.spec = BackboneSpec("letters", "abc", weights_id="v1", modality="text")
        self.fingerprint = self.spec.fingerprint()
        self.batches: list[list[str]] = []

    def preprocess(self, item: str) -> str:
        if not item.strip():
            raise ValueError("empty text")
        return item

    def collate(self, samples: list[str]) -> list[str]:
        self.batches.append(list(samples))
        return list(samples)

    def encode(self, batch: list[str]) -> torch.Tensor:
        return torch.tensor([[t.count(c) for c in "abc"] for t in batch], dtype=torch.float32)

    def to(self, device: str, precision: str = "fp32") -> Letters:
        return self


def test_a_text_encoder_without_tokenize_takes_the_same_path(tmp_path: Path) -> None:
    enc = Letters()
    assert not isinstance(enc, TextEncoder) and isinstance(as_text_encoder(enc), TextEncoder)
    texts = ["a", "abcabc", "bb", "cab", "  ", "aaaaaaa"]
    src = ArraySource(texts)
    res = encode(src, enc, tmp_path / "s.h5", batch_size=2, on_error="skip", progress=False)
    assert (res.n_encoded, res.n_skipped) == (5, 1)
    assert enc.batches == [["aaaaaaa", "abcabc"], ["cab", "bb"], ["a"]]  # longest first
    good = [t for t in texts if t.strip()]
    with FeatureStore(tmp_path / "s.h5") as fs:
        np.testing.assert_array_equal(fs.features, encode_items(enc, good, batch_size=2))
