"""Batched JPEG decoding (``decode_device``): the same items, features close to the PIL path,
bad files reported with their ids. ``decode_device="cpu"`` runs the path without a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedpipe.backbones import load_backbone
from embedpipe.data import open_source
from embedpipe.encoding import encode
from embedpipe.errors import ConfigError
from embedpipe.store import FeatureStore

OPTS = {"batch_size": 4, "precision": "fp32", "progress": False, "num_workers": 0}


def _folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for k in range(10):
        d = root / ("a" if k % 2 else "b")
        d.mkdir(parents=True, exist_ok=True)
        # smooth images, so JPEG decoders agree closely
        base = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((48, 40), Image.BILINEAR)
        img.save(d / f"{k:02d}.jpg", quality=95) if k != 3 else img.save(d / f"{k:02d}.png")
    (root / "a" / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    return root


def test_batched_decoding_matches_pil_and_skips_bad_files(tmp_path: Path) -> None:
    src = open_source(str(_folder(tmp_path / "imgs")))
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    a = encode(src, enc, tmp_path / "pil.h5", on_error="skip", **OPTS)
    b = encode(src, enc, tmp_path / "dec.h5", on_error="skip", decode_device="cpu", **OPTS)
    assert (a.n_encoded, a.n_skipped) == (b.n_encoded, b.n_skipped) == (10, 1)
    with FeatureStore(tmp_path / "pil.h5") as x, FeatureStore(tmp_path / "dec.h5") as y:
        assert x.ids.tolist() == y.ids.tolist()
        assert [e[0] for e in y.errors] == [e[0] for e in x.errors] == ["a/bad.jpg"]
        fx, fy = x.features, y.features
    cos = (fx * fy).sum(1) / np.linalg.norm(fx, axis=1) / np.linalg.norm(fy, axis=1)
    assert cos.min() >= 0.99, cos


def test_a_backbone_without_tensor_preprocessing_is_refused(tmp_path: Path) -> None:
    src = open_source(str(_folder(tmp_path / "imgs")))
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)

    class PilOnly:
        def __call__(self, img):
            if not hasattr(img, "convert"):
                raise TypeError("expected a PIL image")
            return enc.preprocess(img)

    enc.preprocess = PilOnly()
    with pytest.raises(
        ConfigError, match=r"decode_device='cpu' needs a backbone whose preprocessing"
    ):
        encode(src, enc, tmp_path / "x.h5", decode_device="cpu", **OPTS)
