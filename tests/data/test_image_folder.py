from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedpipe.data import ImageFolderSource, content_hash
from embedpipe.errors import ConfigError, ItemError

from .conftest import solid, write_png


def test_class_folders_give_sorted_classes_and_relative_ids(class_folder: Path) -> None:
    src = ImageFolderSource(class_folder)
    assert src.modality == "image"
    assert src.classes == ["cat", "dog"]
    assert src.ids == [
        "cat/a.png",
        "cat/b.png",
        "cat/c.JPG",
        "dog/e.png",
        "dog/puppies/d.png",
        "loose.png",
    ]
    # Nested images belong to their top-level class; loose files at the root have no label.
    assert src.labels.tolist() == [0, 0, 0, 1, 1, -1]
    assert src.labels.dtype == np.int64
    assert len(src) == 6


def test_load_returns_rgb_pixels(class_folder: Path) -> None:
    src = ImageFolderSource(class_folder)
    img = src.load(src.ids.index("cat/a.png"))
    assert img.mode == "RGB" and img.size == (12, 10)
    assert img.getpixel((3, 4)) == (255, 0, 0)
    jpeg = np.asarray(src.load(src.ids.index("cat/c.JPG")), dtype=int)
    assert np.abs(jpeg - [0, 0, 255]).max() < 8  # lossy, but blue


def test_modes_are_converted_to_rgb_keeping_transparency(tmp_path: Path) -> None:
    """Opaque modes become RGB; an image with transparency stays RGBA, for the backbone to
    convert its own library's way (embedpipe.backbones.rgb)."""
    root = tmp_path / "modes"
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    rgba.putpixel((0, 0), (0, 0, 255, 255))
    write_png(root / "rgba.png", rgba)
    write_png(root / "gray.png", Image.new("L", (4, 4), 77))
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    write_png(root / "pal.png", pal)
    deep = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    write_png(root / "deep16.png", deep)
    src = ImageFolderSource(root)
    got = {i: src.load(k) for k, i in enumerate(src.ids)}
    assert {i: im.mode for i, im in got.items() if im.mode != "RGB"} == {"rgba.png": "RGBA"}
    assert got["rgba.png"].getpixel((1, 1)) == (255, 0, 0, 0)  # the alpha channel kept
    assert got["rgba.png"].getpixel((0, 0)) == (0, 0, 255, 255)
    assert got["gray.png"].getpixel((2, 2)) == (77, 77, 77)
    assert got["pal.png"].getpixel((2, 2)) == (10, 200, 30)
    assert got["deep16.png"].getpixel((2, 2)) == (255, 255, 255)  # 16-bit white stays white


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    root = tmp_path / "exif"
    root.mkdir()
    img = Image.new("RGB", (40, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    img.save(root / "rot.jpg", format="JPEG", exif=exif.tobytes(), quality=95)
    out = ImageFolderSource(root).load(0)
    assert out.size == (20, 40)
    arr = np.asarray(out, dtype=int)
    assert arr[:5].mean() > 200 and arr[-5:].mean() < 50  # the band is now on top


def test_flat_folder_has_no_labels(flat_folder: Path) -> None:
    src = ImageFolderSource(flat_folder)
    assert src.classes == []
    assert src.labels.tolist() == [-1, -1, -1]
    assert src.ids == ["img0.png", "img1.png", "img2.png"]


def test_truncated_and_corrupt_files_raise_item_error(tmp_path: Path) -> None:
    root = tmp_path / "bad"
    rng = np.random.default_rng(1)
    good = write_png(
        root / "good.png", Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    )
    data = good.read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "garbage.jpg").write_bytes(b"this is not a jpeg" * 10)
    (root / "empty.png").write_bytes(b"")
    src = ImageFolderSource(root)
    assert src.load(src.ids.index("good.png")).size == (64, 64)
    with pytest.raises(ItemError) as e:
        src.load(src.ids.index("truncated.png"))
    assert e.value.item_id == "truncated.png"
    assert "truncated" in e.value.reason or "corrupt" in e.value.reason
    for name in ("garbage.jpg", "empty.png"):
        with pytest.raises(ItemError) as e:
            src.load(src.ids.index(name))
        assert e.value.item_id == name
        assert "not a readable image" in e.value.reason
    # A corrupt file still has bytes: hashing it works, so it can be recorded as skipped.
    assert len(src.content_hash(src.ids.index("garbage.jpg"))) == 16


def test_file_deleted_after_construction(class_folder: Path) -> None:
    src = ImageFolderSource(class_folder)
    (class_folder / "cat" / "b.png").unlink()
    with pytest.raises(ItemError, match="file not found.*closest names: a.png") as e:
        src.load(src.ids.index("cat/b.png"))
    assert e.value.item_id == "cat/b.png"
    with pytest.raises(ItemError, match="file not found"):
        src.content_hash(src.ids.index("cat/b.png"))


def test_content_hash_is_blake2b_of_file_bytes(class_folder: Path) -> None:
    src = ImageFolderSource(class_folder)
    i = src.ids.index("dog/e.png")
    data = (class_folder / "dog" / "e.png").read_bytes()
    assert (
        src.content_hash(i) == hashlib.blake2b(data, digest_size=16).digest() == content_hash(data)
    )


def test_content_hash_changes_iff_bytes_change(class_folder: Path) -> None:
    before = ImageFolderSource(class_folder)
    h = before.content_hashes()
    # Same bytes, new mtime: same hash.
    os.utime(class_folder / "cat" / "a.png", (1, 1))
    assert ImageFolderSource(class_folder).content_hashes() == h
    # Other bytes: only that item's hash changes.
    write_png(class_folder / "cat" / "a.png", solid((254, 0, 0)))
    after = ImageFolderSource(class_folder).content_hashes()
    changed = [k for k in range(len(h)) if h[k] != after[k]]
    assert changed == [before.ids.index("cat/a.png")]
    # Identical bytes under another name hash the same.
    shutil.copy(class_folder / "dog" / "e.png", class_folder / "dog" / "e_copy.png")
    src = ImageFolderSource(class_folder)
    assert src.content_hash(src.ids.index("dog/e_copy.png")) == src.content_hash(
        src.ids.index("dog/e.png")
    )


def test_bulk_hashing_on_threads_matches_item_by_item(tmp_path: Path) -> None:
    root = tmp_path / "many"
    rng = np.random.default_rng(2)
    for k in range(40):
        write_png(
            root / f"c{k % 3}" / f"{k:02d}.png",
            Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)),
        )
    bulk = ImageFolderSource(root).content_hashes()
    one_by_one = ImageFolderSource(root)
    assert bulk == [one_by_one.content_hash(i) for i in range(len(one_by_one))]
    assert len(set(bulk)) == 40


def test_digest_stable_across_reconstruction_and_moves(class_folder: Path, tmp_path: Path) -> None:
    d = ImageFolderSource(class_folder).digest()
    assert ImageFolderSource(class_folder).digest() == d
    moved = tmp_path / "elsewhere" / "renamed_root"
    moved.parent.mkdir()
    shutil.move(str(class_folder), moved)
    assert ImageFolderSource(moved).digest() == d
    # Renaming a class changes labels/classes → a new digest.
    (moved / "dog").rename(moved / "hound")
    assert ImageFolderSource(moved).digest() != d


def test_fixed_classes_keep_the_mapping(class_folder: Path) -> None:
    shutil.rmtree(class_folder / "cat")
    src = ImageFolderSource(class_folder, classes=["cat", "dog"])
    assert src.classes == ["cat", "dog"]
    assert src.labels.tolist() == [1, 1, -1]
    with pytest.raises(
        ConfigError, match=r"not among the given classes.*'dog' \(item 'dog/e.png'\)"
    ):
        ImageFolderSource(class_folder, classes=["cat", "bird"])


def test_extensions_filter(class_folder: Path) -> None:
    src = ImageFolderSource(class_folder, extensions=["jpg"])
    assert src.ids == ["cat/c.JPG"]


def test_bad_roots(tmp_path: Path, class_folder: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist.*closest names: pets"):
        ImageFolderSource(tmp_path / "pest")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        ImageFolderSource(class_folder / "loose.png")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.md").write_text("x")
    with pytest.raises(ConfigError, match=r"no image files.*readme\.md"):
        ImageFolderSource(empty)


def test_index_out_of_range(flat_folder: Path) -> None:
    src = ImageFolderSource(flat_folder)
    assert src.load(-1).size == src.load(2).size
    with pytest.raises(IndexError):
        src.load(3)
