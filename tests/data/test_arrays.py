from __future__ import annotations

import numpy as np
import pytest

from embedpipe.data import ArraySource, array_content_hash, text_content_hash
from embedpipe.errors import ConfigError, ItemError


def test_grayscale_uint8_images_load_as_rgb() -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    src = ArraySource(images)
    assert src.modality == "image" and len(src) == 2
    assert src.ids == ["item-000000", "item-000001"]
    img = src.load(1)
    assert img.mode == "RGB" and img.size == (4, 3)
    assert np.array_equal(np.asarray(img)[..., 0], images[1])
    assert np.array_equal(np.asarray(img)[..., 2], images[1])


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channel_layouts(channels: int) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 5, 6, channels), dtype=np.uint8)
    if channels == 4:
        images[..., 3] = 255  # opaque, so the RGB part is kept as is
    out = np.asarray(ArraySource(images).load(2))
    assert out.shape == (5, 6, 3)
    expected = images[2, ..., :3] if channels > 1 else np.repeat(images[2], 3, axis=2)
    assert np.array_equal(out, expected)


def test_float_images_in_unit_range() -> None:
    images = np.full((1, 2, 2, 3), 0.5, dtype=np.float32)
    images[0, 0, 0] = [0.0, 1.0, 0.25]
    px = ArraySource(images).load(0).getpixel((0, 0))
    assert px == (0, 255, 64)
    assert ArraySource(images).load(0).getpixel((1, 1)) == (128, 128, 128)


def test_bad_arrays_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"floats must lie in \[0, 1\]"):
        ArraySource(np.full((1, 2, 2), 3.0))
    with pytest.raises(ConfigError, match="NaN"):
        ArraySource(np.full((1, 2, 2), np.nan))
    with pytest.raises(ConfigError, match="dtype int64 is not supported"):
        ArraySource(np.zeros((1, 2, 2), dtype=np.int64))
    with pytest.raises(ConfigError, match=r"\[N, C, H, W\]"):
        ArraySource(np.zeros((1, 3, 8, 8), dtype=np.uint8))
    with pytest.raises(ConfigError, match="list of str; item 1 is int"):
        ArraySource(["a", 3])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="one string"):
        ArraySource("abc")


def test_labels_ints_strings_and_classes() -> None:
    x = np.zeros((4, 2, 2), np.uint8)
    src = ArraySource(x, labels=np.array([0, 2, 2, -1]), classes=["a", "b", "c"])
    assert src.classes == ["a", "b", "c"] and src.labels.tolist() == [0, 2, 2, -1]
    src = ArraySource(x, labels=[5, 7, -1, 5])
    assert src.classes == ["5", "7"] and src.labels.tolist() == [0, 1, -1, 0]
    src = ArraySource(x, labels=["dog", None, "cat", ""])
    assert src.classes == ["cat", "dog"] and src.labels.tolist() == [1, -1, 0, -1]
    with pytest.raises(ConfigError, match=r"value 3 at position 1 is not a class index in 0\.\.2"):
        ArraySource(x, labels=[0, 3, 0, 0], classes=["a", "b", "c"])
    with pytest.raises(ConfigError, match="3 labels for 4 items"):
        ArraySource(x, labels=[0, 1, 0])


def test_ids() -> None:
    x = np.zeros((2, 2, 2), np.uint8)
    assert ArraySource(x, ids=["p", "q"]).ids == ["p", "q"]
    with pytest.raises(ConfigError, match=r"duplicated: \['p'\]"):
        ArraySource(x, ids=["p", "p"])
    with pytest.raises(ConfigError, match="1 ids for 2 items"):
        ArraySource(x, ids=["p"])


def test_image_content_hash_changes_iff_pixels_or_shape_change() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
    src = ArraySource(x)
    same = ArraySource(x.copy())
    assert src.content_hashes() == same.content_hashes()
    assert src.content_hash(0) == array_content_hash(x[0])
    y = x.copy()
    y[1, 2, 3] ^= 1
    changed = ArraySource(y).content_hashes()
    assert [a != b for a, b in zip(src.content_hashes(), changed, strict=True)] == [
        False,
        True,
        False,
    ]
    # The same bytes in another shape or dtype are another image.
    assert array_content_hash(x[0].reshape(2, 8)) != src.content_hash(0)
    assert array_content_hash(x[0].astype(np.float32) / 255) != src.content_hash(0)


def test_texts() -> None:
    src = ArraySource(["good film", "  ", "bad film"], labels=["pos", "neg", "neg"])
    assert src.modality == "text"
    assert src.load(0) == "good film"
    assert src.content_hash(2) == text_content_hash("bad film")
    with pytest.raises(ItemError, match="empty text") as e:
        src.load(1)
    assert e.value.item_id == "item-000001"
    assert ArraySource(np.array(["x", "y"])).load(1) == "y"


def test_describe_is_json_ready() -> None:
    import json

    d = ArraySource(
        np.zeros((2, 3, 3), np.uint8), labels=[0, 1], name="demo", meta={"k": 1}
    ).describe()
    assert json.loads(json.dumps(d)) == d
    assert d["name"] == "demo" and d["n_items"] == 2 and d["shape"] == [3, 3] and d["k"] == 1
