"""Static word vectors: file formats, mean / IDF pooling, OOV handling, identity."""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import shutil

import numpy as np
import pytest
import torch

from embedpipe.backbones import load_backbone
from embedpipe.backbones.word_vectors import load_word_vectors, read_vectors
from embedpipe.errors import ConfigError
from tests.backbones.conftest import WORD_VECTORS, vec, write_vectors_text


def _encode(enc, texts) -> np.ndarray:
    return enc.encode(enc.collate([enc.preprocess(t) for t in texts])).numpy()


@pytest.mark.parametrize("fname", ["glove.txt", "w2v.txt", "w2v.bin"])
def test_formats_read_the_same_vectors(vectors_dir, fname):
    words, matrix = read_vectors(vectors_dir / fname)
    assert words == list(WORD_VECTORS)
    np.testing.assert_array_equal(matrix, np.asarray(list(WORD_VECTORS.values()), np.float32))


def test_mean_of_in_vocabulary_tokens(vectors_dir):
    enc = load_backbone(f"word-vectors:{vectors_dir / 'w2v.bin'}")
    assert enc.dim == 2 and enc.modality == "text" and enc.spec.pooling == "mean"
    out = _encode(enc, ["The CAT sat.", "dog, zebra & unicorn!", "the the cat"])
    np.testing.assert_allclose(out[0], (vec("the") + vec("cat") + vec("sat")) / 3, rtol=1e-6)
    np.testing.assert_allclose(out[1], vec("dog"), rtol=1e-6)  # OOV tokens ignored
    np.testing.assert_allclose(out[2], (2 * vec("the") + vec("cat")) / 3, rtol=1e-6)
    assert enc.lengths(["The CAT sat.", "dog, zebra & unicorn!"]) == [3, 3]
    # Regex tokens: "don't" → "don", "t"; only "don" is in the vocabulary.
    np.testing.assert_allclose(_encode(enc, ["don't"])[0], vec("don"), rtol=1e-6)


def test_text_without_known_words_and_empty_text_raise(vectors_dir):
    enc = load_backbone(f"word-vectors:{vectors_dir / 'glove.txt'}")
    pre = pickle.loads(pickle.dumps(enc.preprocess))
    with pytest.raises(ValueError, match="no in-vocabulary token.*zebra"):
        pre("Zebra unicorn")
    with pytest.raises(ValueError, match="empty text"):
        pre("  ")


def test_weights_id_is_the_file_hash_and_survives_a_move(vectors_dir, tmp_path):
    path = vectors_dir / "glove.txt"
    enc = load_backbone(f"word-vectors:{path}")
    assert enc.spec.weights_id == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    moved = shutil.copy(path, tmp_path / "renamed.vec")
    assert load_backbone(f"word-vectors:{moved}").fingerprint == enc.fingerprint
    # Same vectors, other format: other bytes, other identity.
    assert load_backbone(f"word-vectors:{vectors_dir / 'w2v.bin'}").fingerprint != enc.fingerprint


def test_idf_weighting_from_a_table_and_a_file(vectors_dir, tmp_path):
    path = vectors_dir / "glove.txt"
    plain = load_backbone(f"word-vectors:{path}")
    idf = {"the": 1.0, "cat": 3.0}  # absent words get the largest weight, 3.0
    enc = load_backbone(f"word-vectors:{path}", idf=idf)
    assert enc.spec.pooling == "idf_mean" and enc.spec.options["idf_id"].startswith("sha256:")
    assert enc.fingerprint != plain.fingerprint
    out = _encode(enc, ["the cat sat"])[0]
    expected = (1.0 * vec("the") + 3.0 * vec("cat") + 3.0 * vec("sat")) / 7.0
    np.testing.assert_allclose(out, expected, rtol=1e-6)

    table_file = tmp_path / "idf.txt"
    table_file.write_text("the 1.0\ncat 3.0\n")
    from_file = load_backbone(f"word-vectors:{path}", idf=str(table_file))
    assert from_file.fingerprint == enc.fingerprint
    assert from_file.spec.files["idf"] == str(table_file.resolve())
    assert load_backbone(from_file.spec.to_dict()).fingerprint == enc.fingerprint

    with pytest.raises(ConfigError, match="finite and > 0"):
        load_backbone(f"word-vectors:{path}", idf={"the": -1.0})
    with pytest.raises(ConfigError, match="idf_mean.*needs idf"):
        load_backbone(f"word-vectors:{path}", pooling="idf_mean")


def test_fit_idf_and_reload_from_spec(vectors_dir, tmp_path):
    path = vectors_dir / "glove.txt"
    corpus = ["the cat sat on the mat", "the dog sat", "the cat", "a unicorn"]
    enc = load_word_vectors(path)
    before = enc.fingerprint
    enc.fit_idf(corpus)
    assert enc.fingerprint != before
    n = len(corpus)
    idf = {w: math.log((1 + n) / (1 + df)) + 1 for w, df in [("the", 3), ("cat", 2), ("sat", 2)]}
    out = _encode(enc, ["the cat sat"])[0]
    weights = np.array([idf["the"], idf["cat"], idf["sat"]])
    expected = (weights[:, None] * np.stack([vec("the"), vec("cat"), vec("sat")])).sum(0)
    np.testing.assert_allclose(out, expected / weights.sum(), rtol=1e-5)

    # A fitted table that was never saved cannot be rebuilt from the spec.
    with pytest.raises(ConfigError, match="never saved.*save_idf"):
        load_backbone(enc.spec.to_dict())
    saved = enc.save_idf(tmp_path / "idf.json")
    assert json.loads(saved.read_text())["the"] == pytest.approx(idf["the"])
    again = load_backbone(enc.spec.to_dict())
    assert again.fingerprint == enc.fingerprint
    np.testing.assert_allclose(_encode(again, ["the cat sat"])[0], out, rtol=1e-6)

    with pytest.raises(ConfigError, match="no text with an in-vocabulary token"):
        load_word_vectors(path).fit_idf(["zebra", "unicorn"])


def test_normalize_option(vectors_dir):
    enc = load_backbone(f"word-vectors:{vectors_dir / 'glove.txt'}", normalize=True)
    out = enc.encode(enc.collate([enc.preprocess("the cat"), enc.preprocess("mat")]))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2))


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_backbone(f"word-vectors:{tmp_path / 'missing.txt'}")
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("cat 1.0 2.0\ndog 1.0\n")
    with pytest.raises(ConfigError, match=r"ragged.txt:2: 1 values where 2"):
        load_word_vectors(ragged)
    words = tmp_path / "words.txt"
    words.write_text("cat one two\n")
    with pytest.raises(ConfigError, match="non-numeric"):
        load_word_vectors(words)
    truncated = tmp_path / "trunc.bin"
    truncated.write_bytes(b"3 2\ncat " + np.float32([1, 2]).tobytes())
    with pytest.raises(ConfigError, match="truncated"):
        load_word_vectors(truncated)
    with pytest.raises(ConfigError, match="no weights= or layer="):
        load_backbone(f"word-vectors:{ragged}", layer="x")


def test_duplicate_words_keep_the_first_vector(tmp_path):
    path = write_vectors_text(tmp_path / "dup.txt", {"cat": [1.0, 0.0]}, header=False)
    path.write_text(path.read_text() + "cat 9.0 9.0\ndog 0.0 1.0\n")
    enc = load_word_vectors(path)
    np.testing.assert_allclose(_encode(enc, ["cat"])[0], [1.0, 0.0])
    assert enc.words == ["cat", "dog"]
