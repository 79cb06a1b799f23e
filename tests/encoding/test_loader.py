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


def test_large_jpegs_decode_at_a_reduced_scale_recorded_in_the_spec(tmp_path) -> None:
    from embedpipe.backbones import load_backbone
    from embedpipe.data import ImageFolderSource
    from embedpipe.data.images import DRAFT_MARGIN, decoding_for
    from embedpipe.encoding import encode
    from embedpipe.store import FeatureStore

    rng = np.random.default_rng(5)
    small = 40  # the model resizes the shorter side to 40: a 480 px JPEG decodes at 1/4 (120)
    for k in range(4):
        base = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        img = Image.fromarray(base).resize((640, 480), Image.BICUBIC)
        img.save(tmp_path / f"{k}.jpg", quality=92)
    src = ImageFolderSource(tmp_path)
    kw = {"weights": None, "crop_size": 32, "resize_size": small, "precision": "fp32"}
    enc = load_backbone("resnet18", **kw)
    full = load_backbone("resnet18", draft=False, **kw)
    assert enc.fingerprint != full.fingerprint and "draft" not in full.spec.preprocessing
    # A spec from before the field (no "draft" key) is a full-size decode.
    assert load_backbone(full.spec.to_dict()).preprocess.draft is False
    assert enc.preprocess.decode_min_side == small and 480 >= 2 * DRAFT_MARGIN * small

    out = {}
    for name, e in (("draft", enc), ("full", full)):
        encode(src, e, tmp_path / f"{name}.h5", batch_size=2, num_workers=0, progress=False)
        with FeatureStore(tmp_path / f"{name}.h5") as fs:
            out[name] = fs.read(fs.index_of([str(i) for i in src.ids]))
    with decoding_for(small):
        drafted = [src.load(i) for i in range(len(src))]
    assert {im.size for im in drafted} == {(160, 120)}
    with torch.inference_mode():
        want = enc.encode(torch.stack([enc.preprocess(im) for im in drafted])).numpy()
        want_full = full.encode(torch.stack([full.preprocess(src.load(i)) for i in range(4)]))
    np.testing.assert_allclose(out["draft"], want, rtol=0, atol=1e-5)
    np.testing.assert_allclose(out["full"], want_full.numpy(), rtol=0, atol=1e-5)
    a, b = out["draft"], out["full"]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert not np.array_equal(a, b) and cos.min() > 0.999
