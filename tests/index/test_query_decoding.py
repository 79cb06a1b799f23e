"""A large JPEG queried by path, bytes or upload, or predicted, is decoded as its store decoded
it (at a reduced scale): its query features are its store row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(scope="module")
def large(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    from embedpipe.backbones import load_backbone
    from embedpipe.data import open_source
    from embedpipe.encoding import encode

    root = tmp_path_factory.mktemp("large") / "photos"
    rng = np.random.default_rng(7)
    for c in ("a", "b"):
        (root / c).mkdir(parents=True)
        for j in range(3):
            small = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((480, 360), Image.BICUBIC)
            img.save(root / c / f"{j}.jpg", quality=90)
    # The model resizes to 40 px: a 360 px JPEG decodes at 1/2 (180 >= 3 x 40 = 120).
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=40, precision="fp32")
    assert enc.preprocess.draft
    store = root.parent / "s.h5"
    encode(open_source(str(root)), enc, store, batch_size=4, num_workers=0, progress=False)
    return root, store, enc


def test_image_queries_equal_their_store_rows(large) -> None:
    from embedpipe.index import build_index

    root, store, enc = large
    index = build_index(store, "flat")
    index.set_encoder(enc)
    path = root / "b" / "1.jpg"
    for query in (path, path.read_bytes()):
        hit = index.search_images([query], k=1)[0][0]
        assert hit.id == "b/1.jpg" and hit.score == pytest.approx(1.0, abs=1e-6)
    # Decoded at full size the same photo is a little off its row: the decode matters.
    full = index.search_images([Image.open(path).convert("RGB")], k=1)[0][0]
    assert full.id == "b/1.jpg" and full.score < 1.0 - 1e-6


def test_predicting_a_path_uses_the_store_decoding(large, tmp_path: Path) -> None:
    from embedpipe.heads import train_head
    from embedpipe.heads.predict import predict_items
    from embedpipe.store import FeatureStore

    root, store, enc = large
    head = train_head(store, "logreg")
    path = root / "a" / "2.jpg"
    got = predict_items(head, [str(path)], encoder=enc)
    with FeatureStore(store) as fs:
        row = fs.read(fs.index_of(["a/2.jpg"]))
    want = head.predictions(row, ["0"])
    np.testing.assert_allclose(got.proba, want.proba, rtol=0, atol=1e-6)
