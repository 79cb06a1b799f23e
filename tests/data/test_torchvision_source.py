from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from embedpipe.data import ArraySource, ImageFolderSource, TorchvisionSource, load_builtin, subset
from embedpipe.errors import ConfigError, NotFoundError

from .conftest import needs_fashion

tvd = pytest.importorskip("torchvision.datasets")


def write_idx(path: Path, array: np.ndarray) -> None:
    """An uncompressed unsigned-byte IDX file, as torchvision's MNIST readers expect."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        struct.pack(">HBB", 0, 8, a.ndim) + struct.pack(f">{a.ndim}i", *a.shape) + a.tobytes()
    )


def write_mnist_raw(root: Path, cls_name: str, train: ArraySource, test: ArraySource) -> None:
    raw = root / cls_name / "raw"
    for prefix, src in (("train", train), ("t10k", test)):
        assert src.images is not None
        write_idx(raw / f"{prefix}-images-idx3-ubyte", src.images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", src.labels)


def test_mnist_dataset_on_disk(tmp_path: Path) -> None:
    train = load_builtin("mnist", split="train", limit=20)
    test = load_builtin("mnist", split="test", limit=30)
    write_mnist_raw(tmp_path, "MNIST", train, test)
    ds = tvd.MNIST(str(tmp_path), train=False, download=False)
    src = TorchvisionSource(ds)
    assert src.split == "test" and len(src) == 30
    assert src.ids[:2] == ["test/00000", "test/00001"]
    assert src.classes == list(ds.classes)
    assert np.array_equal(src.labels, test.labels)
    img = src.load(3)
    assert img.mode == "RGB"
    assert test.images is not None
    assert np.array_equal(np.asarray(img)[..., 1], test.images[3])
    # Raw pixel bytes hash like the same image held in an ArraySource.
    assert src.content_hashes() == test.content_hashes()
    same = ArraySource(test.images, labels=test.labels, classes=src.classes, ids=src.ids)
    assert src.digest() == same.digest()
    assert TorchvisionSource(tvd.MNIST(str(tmp_path), train=True)).ids[0] == "train/00000"


@needs_fashion
def test_fashion_mnist_matches_builtin(tmp_path: Path) -> None:
    full_test = load_builtin("fashion_mnist", split="test")
    first = subset(full_test, range(40))
    assert full_test.images is not None
    head = ArraySource(
        full_test.images[:40], labels=full_test.labels[:40], classes=full_test.classes
    )
    write_mnist_raw(tmp_path, "FashionMNIST", head, head)
    src = TorchvisionSource.open("FashionMNIST", tmp_path, split="test")
    assert src.ids == first.ids  # "test/00000"...
    assert src.classes == full_test.classes
    assert src.digest() == first.digest()


def test_image_folder_dataset_matches_image_folder_source(class_folder: Path) -> None:
    # torchvision's ImageFolder ignores loose files and keeps hidden ones; ImageFolderSource
    # labels loose files -1 and skips hidden ones: without either, the two agree.
    (class_folder / "loose.png").unlink()
    (class_folder / "dog" / ".hidden.png").unlink()
    ds = tvd.ImageFolder(str(class_folder))
    src = TorchvisionSource(ds)
    mine = ImageFolderSource(class_folder)
    assert src.ids == mine.ids
    assert src.classes == mine.classes
    assert src.labels.tolist() == mine.labels.tolist()
    assert src.digest() == mine.digest()
    assert src.load(0).tobytes() == mine.load(0).tobytes()


def test_transform_must_be_none(tmp_path: Path, class_folder: Path) -> None:
    ds = tvd.ImageFolder(str(class_folder), transform=lambda im: im)
    with pytest.raises(ConfigError, match="transform=None"):
        TorchvisionSource(ds)


def test_missing_dataset_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        TorchvisionSource.open("FashionMNIST", tmp_path / "nowhere", split="test")
    msg = str(e.value)
    assert str(tmp_path / "nowhere" / "FashionMNIST" / "raw") in msg
    assert "download=True" in msg and "apt-get install dataset-fashion-mnist" in msg
    assert not (tmp_path / "nowhere" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").exists()
    with pytest.raises(
        NotFoundError,
        match="unknown torchvision dataset 'Fashion'; did you mean 'FashionMNIST'[?] available:",
    ):
        TorchvisionSource.open("Fashion", tmp_path)
    with pytest.raises(ConfigError, match="looked in"):
        TorchvisionSource.open("ImageFolder", tmp_path / "nope")
