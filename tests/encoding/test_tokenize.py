"""Batched fast tokenisation: every text is tokenised once (not once to sort and again to
encode), and the padded batches equal the tokenizer's own padding."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from embedpipe.backbones import load_backbone
from embedpipe.data import open_source
from embedpipe.encoding import encode, encode_items
from embedpipe.store import FeatureStore


@pytest.fixture(scope="module")
def minilm():
    return load_backbone("minilm", precision="fp32")


class Counting:
    """Forwards to the encoder's batched tokenisation, counting the texts it is given."""

    def __init__(self, tok: Any) -> None:
        self.tok, self.texts = tok, 0

    def __call__(self, texts: list[str]) -> Any:
        self.texts += len(texts)
        return self.tok(texts)


def test_token_collate_equals_the_tokenizers_padding(minilm) -> None:
    texts = ["a cat", "the quick brown fox jumps over the lazy dog", "ok " * 400]
    ours = minilm.collate_tokens(minilm.tokenize(texts))
    theirs = minilm.tokenizer(
        texts, padding="longest", truncation=True, max_length=minilm.max_length, return_tensors="pt"
    )
    assert set(ours) == set(theirs.keys())
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k
    assert minilm.lengths(texts)[2] == minilm.max_length  # truncated


def test_direct_rust_tokenisation_equals_the_tokenizers_call(minilm) -> None:
    src = open_source({"builtin": "rotten_tomatoes", "limit": 3000})
    texts = [src.load(i) for i in range(len(src))]
    texts += ["ok " * 400, "héllo wörld 日本語 [SEP] [CLS] ", "a"]
    assert minilm.tokenize._backend() is not None  # MiniLM's is a fast tokenizer
    ours = minilm.tokenize(texts)
    ref = minilm.tokenizer(
        texts,
        truncation=True,
        max_length=minilm.max_length,
        return_attention_mask=False,
        return_token_type_ids=True,
    )
    for k, (o, i, t) in enumerate(zip(ours, ref["input_ids"], ref["token_type_ids"], strict=True)):
        assert o.tolist() == [i, t], texts[k]


def test_left_padding_equals_the_tokenizers(minilm) -> None:
    from embedpipe.backbones.text import TokenCollate

    texts = ["a cat", "the quick brown fox jumps", "ok"]
    names = ("input_ids", "token_type_ids", "attention_mask")
    ours = TokenCollate(minilm.tokenizer.pad_token_id, 0, True, names)(minilm.tokenize(texts))
    minilm.tokenizer.padding_side = "left"
    try:
        theirs = minilm.tokenizer(texts, padding="longest", return_tensors="pt")
    finally:
        minilm.tokenizer.padding_side = "right"
    for k in names:
        assert torch.equal(ours[k], theirs[k]), k


def test_each_text_is_tokenised_once_and_features_match(
    tmp_path: Path, minilm, monkeypatch
) -> None:
    src = open_source({"builtin": "rotten_tomatoes", "limit": 40})
    counting = Counting(minilm.tokenize)
    monkeypatch.setattr(minilm, "tokenize", counting)

    def no_retokenising(samples: list[str]) -> Any:
        raise AssertionError("texts were tokenised again per batch")

    monkeypatch.setattr(minilm, "collate", no_retokenising)
    res = encode(src, minilm, tmp_path / "t.h5", batch_size=16, progress=False)
    assert res.n_encoded == 40 and counting.texts == 40
    monkeypatch.undo()
    texts = [src.load(i) for i in range(len(src))]
    expected = encode_items(minilm, texts, batch_size=16)
    with FeatureStore(tmp_path / "t.h5") as fs:
        by_id = dict(zip(fs.ids.tolist(), fs.features, strict=True))
    got = np.stack([by_id[str(src.ids[i])] for i in range(len(src))])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_bad_texts_come_last_so_good_batches_are_kept(tmp_path: Path, minilm) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\ngood one,a\n   ,b\nanother good,a\n")
    src = open_source(str(csv))
    res = encode(src, minilm, tmp_path / "s.h5", on_error="skip", progress=False, batch_size=1)
    assert (res.n_encoded, res.n_skipped) == (2, 1)
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert len(fs) == 2 and "empty text" in fs.errors[0][1]


def test_workers_tokenise_ahead_and_each_chunk_is_batched_as_it_arrives(
    minilm, monkeypatch
) -> None:
    from embedpipe.encoding import loader

    src = open_source({"builtin": "rotten_tomatoes", "limit": 50})
    monkeypatch.setattr(loader, "TOKENIZE_CHUNK", 10)  # chunks of 12 texts: 3 batches of 4
    batches = list(
        loader.iter_token_batches(
            src, minilm, range(50), batch_size=4, num_workers=1, pin_memory=False
        )
    )
    assert sorted(p for b in batches for p in b.positions) == list(range(50))
    assert [len(b.positions) for b in batches] == [4] * 12 + [2]  # a short batch at the end only
    for c in range(5):  # batches 3c..3c+2 hold chunk c (positions 12c..12c+11), longest first
        held = [p for b in batches[3 * c : 3 * c + 3] for p in b.positions]
        assert sorted(held) == list(range(12 * c, min(50, 12 * c + 12)))
        widths = [int(b.batch["attention_mask"].sum(1).max()) for b in batches[3 * c : 3 * c + 3]]
        assert widths == sorted(widths, reverse=True)
    inline = list(
        loader.iter_token_batches(
            src, minilm, range(50), batch_size=4, num_workers=0, pin_memory=False
        )
    )
    widths = [b.batch["input_ids"].shape[1] for b in inline]
    assert widths == sorted(widths, reverse=True)  # in-process: one sort over every text


def test_an_encode_tokenising_in_workers_equals_the_items_encoded_directly(
    tmp_path: Path, minilm, monkeypatch
) -> None:
    from embedpipe.encoding import loader

    monkeypatch.setattr(loader, "TOKENIZE_CHUNK", 16)
    csv = tmp_path / "t.csv"
    rows = [f"review number {i} " + "good " * (i % 9) for i in range(37)]
    rows[5] = "   "
    csv.write_text("text,label\n" + "".join(f"{t},{'ab'[i % 2]}\n" for i, t in enumerate(rows)))
    src = open_source(str(csv))
    res = encode(
        src, minilm, tmp_path / "s.h5", batch_size=8, num_workers=2, on_error="skip",
        progress=False,
    )  # fmt: skip
    assert (res.n_encoded, res.n_skipped) == (36, 1)
    good = [i for i in range(37) if i != 5]
    expected = encode_items(minilm, [rows[i] for i in good], batch_size=8)
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert fs.ids.tolist() == [str(src.ids[i]) for i in good]  # source order after finalize
        np.testing.assert_allclose(fs.features, expected, rtol=1e-5, atol=1e-5)
        assert "empty text" in fs.errors[0][1]
