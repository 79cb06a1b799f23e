"""The image loader: uint8 pixels from the workers, normalised per batch, equal to the one-step
preprocess; the encode says where its time went."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image


@pytest.mark.parametrize("workers", [0, 2])
def test_an_image_encode_equals_one_step_preprocessing_and_says_where_time_went(
    tmp_path, workers: int
) -> None:
    from embedpipe.backbones import load_backbone
    from embedpipe.data import ImageFolderSource
    from embedpipe.encoding import encode
    from embedpipe.store import FeatureStore

    rng = np.random.default_rng(3)
    for k in range(10):
        size = (int(rng.integers(30, 90)), int(rng.integers(30, 90)))
        arr = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(arr).save(tmp_path / f"{k}.jpg", quality=90)
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=36, precision="fp32")
    src = ImageFolderSource(tmp_path)
    res = encode(src, enc, tmp_path / "s.h5", batch_size=4, num_workers=workers, progress=False)
    with torch.inference_mode():
        want = enc.encode(torch.stack([enc.preprocess(src.load(i)) for i in range(len(src))]))
    with FeatureStore(tmp_path / "s.h5") as fs:
        got = fs.read(fs.index_of([str(i) for i in src.ids]))
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-5)
    assert set(res.steps) == {"decode", "preprocess", "normalize", "forward", "write"}
    assert all(v >= 0 for v in res.steps.values()) and res.steps["forward"] > 0
    assert "time: decode " in res.summary() and ", forward " in res.summary()
