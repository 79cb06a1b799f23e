"""The extraction engine end to end: real backbones, resume, bad input, reuse, crash."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from embedpipe.backbones import load_backbone
from embedpipe.data import ArraySource, ImageFolderSource, open_source, subset
from embedpipe.encoding import encode, encode_items
from embedpipe.encoding.loader import iter_token_batches
from embedpipe.errors import FeatureValueError, FingerprintMismatchError, ItemError, StoreError
from embedpipe.store import FeatureStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def minilm():
    return load_backbone("minilm", precision="fp32")


@pytest.fixture(scope="module")
def reviews():
    return open_source({"builtin": "rotten_tomatoes", "limit": 160})


@pytest.fixture()
def vectors(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    words = ["good", "bad", "movie", "great", "awful", "plot", "the", "a"]
    lines = [f"{len(words)} 6"] + [
        f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(size=6)) for w in words
    ]
    p = tmp_path / "vec.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def _images(root: Path, n: int = 12, corrupt: str | None = None) -> Path:
    rng = np.random.default_rng(1)
    for k in range(n):
        d = root / ("cat" if k % 2 else "dog")
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(d / f"{k:03d}.png")
    if corrupt:
        (root / "cat" / corrupt).write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    return root


def test_text_encode_matches_in_memory_encoding_and_resumes(
    tmp_path: Path, minilm, reviews
) -> None:
    out = tmp_path / "reviews.h5"
    res = encode(reviews, minilm, out, batch_size=32, progress=False)
    assert (res.n_items, res.n_encoded, res.n_resumed, res.n_skipped) == (160, 160, 0, 0)
    with FeatureStore(out) as fs:
        assert fs.complete and len(fs) == 160 and fs.dim == 384
        assert fs.fingerprint == minilm.fingerprint and fs.backbone == minilm.spec.to_dict()
        assert fs.dataset_digest == reviews.digest()
        assert sorted(fs.ids.tolist()) == sorted(reviews.ids)
        rows = fs.index_of(list(reviews.ids))
        expected = encode_items(minilm, [reviews.load(i) for i in range(len(reviews))])
        np.testing.assert_allclose(fs.read(rows), expected, atol=1e-5)
        np.testing.assert_array_equal(fs.labels[rows], reviews.labels)
        assert fs.classes == ["fresh", "rotten"]
        assert fs.provenance["extra"]["precision"] == "fp32"
    again = encode(reviews, minilm, out, progress=False)  # nothing left to do
    assert (again.n_encoded, again.n_resumed) == (0, 160)


def test_text_batches_are_sorted_by_token_length(minilm) -> None:
    texts = ["short", "a much much longer text with many many words in it", "medium length text"]
    batches = iter_token_batches(
        ArraySource(texts), minilm, [0, 1, 2], batch_size=1, num_workers=0, pin_memory=False
    )
    assert [lb.positions for lb in batches] == [[1], [2], [0]]
    feats = encode_items(minilm, texts)  # sorted internally, returned in input order
    np.testing.assert_allclose(feats[0], encode_items(minilm, ["short"])[0], atol=1e-5)


def test_another_backbone_cannot_append(tmp_path: Path, minilm, reviews) -> None:
    out = tmp_path / "s.h5"
    small = subset(reviews, range(20))
    encode(small, minilm, out, progress=False)
    cls = load_backbone("minilm", pooling="cls", precision="fp32")
    with pytest.raises(FingerprintMismatchError) as e:
        encode(small, cls, out, progress=False)
    assert minilm.fingerprint in str(e.value) and cls.fingerprint in str(e.value)
    res = encode(small, cls, out, overwrite=True, progress=False)
    assert res.n_encoded == 20


def test_changed_dataset_is_not_silently_mixed(tmp_path: Path, vectors: Path) -> None:
    enc = load_backbone(f"word-vectors:{vectors}")
    out = tmp_path / "s.h5"
    encode(ArraySource(["good movie", "bad plot"], ids=["a", "b"]), enc, out, progress=False)
    with pytest.raises(StoreError, match="content changed"):
        encode(ArraySource(["great movie", "bad plot"], ids=["a", "b"]), enc, out, progress=False)
    with pytest.raises(StoreError, match="no longer in the dataset"):
        encode(ArraySource(["bad plot"], ids=["b"]), enc, out, progress=False)
    grown = encode(
        ArraySource(["good movie", "bad plot", "awful"], ids=["a", "b", "c"]),
        enc,
        out,
        progress=False,
    )
    assert (grown.n_resumed, grown.n_encoded) == (2, 1)


def test_empty_text_raises_or_is_skipped(tmp_path: Path, vectors: Path) -> None:
    enc = load_backbone(f"word-vectors:{vectors}")
    src = ArraySource(
        ["good movie", "   ", "bad plot", "zzz qqq"], ids=["ok1", "blank", "ok2", "oov"]
    )
    with pytest.raises(ItemError, match="'blank'.*empty"):
        encode(subset(src, [0, 1, 2]), enc, tmp_path / "a.h5", progress=False)
    with pytest.raises(ItemError, match="'oov'.*no in-vocabulary token"):
        encode(subset(src, [0, 3]), enc, tmp_path / "c.h5", progress=False)
    res = encode(src, enc, tmp_path / "b.h5", on_error="skip", progress=False)
    assert (res.n_encoded, res.n_skipped) == (2, 2)
    with FeatureStore(tmp_path / "b.h5") as fs:
        assert sorted(fs.ids.tolist()) == ["ok1", "ok2"]
        reasons = dict(fs.errors)
        assert set(reasons) == {"blank", "oov"} and "empty" in reasons["blank"]


def test_nan_features_are_refused(tmp_path: Path) -> None:
    p = tmp_path / "nan.txt"
    p.write_text("good 0.1 0.2 0.3\nbroken nan 0.0 1.0\n")
    enc = load_backbone(f"word-vectors:{p}")
    with pytest.raises(FeatureValueError, match="'x2'"):
        encode(
            ArraySource(["good", "broken"], ids=["x1", "x2"]),
            enc,
            tmp_path / "s.h5",
            batch_size=1,
            progress=False,
        )
    with FeatureStore(tmp_path / "s.h5") as fs:
        assert fs.ids.tolist() == ["x1"] and not fs.complete  # the good row before it is kept


def test_corrupt_image_raises_or_is_skipped(tmp_path: Path) -> None:
    root = _images(tmp_path / "imgs", corrupt="broken.png")
    src = ImageFolderSource(root)
    enc = load_backbone("torchvision:resnet18", weights=None, precision="fp32")
    with pytest.raises(ItemError, match="broken.png"):
        encode(src, enc, tmp_path / "a.h5", batch_size=4, num_workers=1, progress=False)
    res = encode(
        src, enc, tmp_path / "b.h5", batch_size=4, num_workers=1, on_error="skip", progress=False
    )
    assert (res.n_encoded, res.n_skipped) == (12, 1)
    with FeatureStore(tmp_path / "b.h5") as fs:
        assert (
            fs.errors[0][0] == "cat/broken.png" and len(fs) == 12 and fs.classes == ["cat", "dog"]
        )
        expected = encode_items(
            enc, [src.load(i) for i in range(len(src)) if src.ids[i] != "cat/broken.png"]
        )
        rows = fs.index_of([i for i in src.ids if i != "cat/broken.png"])
        np.testing.assert_allclose(fs.read(rows), expected, atol=1e-4)


def test_reuse_copies_known_content_and_encodes_only_new_items(
    tmp_path: Path, minilm, reviews
) -> None:
    old = subset(reviews, range(0, 100))
    encode(old, minilm, tmp_path / "old.h5", progress=False)
    res = encode(
        reviews, minilm, tmp_path / "new.h5", reuse_from=[tmp_path / "old.h5"], progress=False
    )
    assert (res.n_reused, res.n_encoded) == (100, 60)
    with FeatureStore(tmp_path / "new.h5") as new, FeatureStore(tmp_path / "old.h5") as prev:
        ids = list(old.ids)
        np.testing.assert_array_equal(new.read(new.index_of(ids)), prev.read(prev.index_of(ids)))
        assert len(new) == 160 and new.complete
    other = load_backbone("minilm", pooling="cls")
    with pytest.raises(FingerprintMismatchError):
        encode(reviews, other, tmp_path / "x.h5", reuse_from=[tmp_path / "old.h5"], progress=False)


def test_encode_items_names_a_bad_item(minilm) -> None:
    with pytest.raises(ItemError, match="#1"):
        encode_items(minilm, ["fine", ""])


def _committed(path: Path) -> int:
    try:
        with FeatureStore(path) as fs:
            return len(fs)
    except Exception:
        return 0


def test_sigkill_mid_encode_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    """A real `embedpipe encode` process is killed mid-way; the resumed store equals a clean run."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    data = "builtin:rotten_tomatoes?limit=480"
    cmd = [
        sys.executable,
        "-m",
        "embedpipe",
        "encode",
        "--data",
        data,
        "--backbone",
        "minilm",
        "--precision",
        "fp32",
        "--batch-size",
        "16",
        "--quiet",
    ]
    out = tmp_path / "killed.h5"
    proc = subprocess.Popen(
        [*cmd, "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 240
    while _committed(out) < 48 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the encode finished before it could be killed; raise the limit"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = _committed(out)
    assert 0 < n_before < 480
    resumed = subprocess.run([*cmd, "--out", str(out)], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{n_before} already there" in resumed.stdout
    clean = tmp_path / "clean.h5"
    subprocess.run([*cmd, "--out", str(clean)], env=env, check=True, capture_output=True)
    with FeatureStore(out) as a, FeatureStore(clean) as b:
        assert a.complete and len(a) == len(b) == 480
        assert len(set(a.ids.tolist())) == 480 and set(a.ids.tolist()) == set(b.ids.tolist())
        ids = b.ids.tolist()
        ra = a.index_of(ids)
        np.testing.assert_allclose(a.read(ra), b.features, atol=1e-5)  # row by row, by id
        np.testing.assert_array_equal(a.labels[ra], b.labels)
        np.testing.assert_array_equal(a.content_hashes[ra], b.content_hashes)
        a.verify()


def test_missing_file_in_a_table_raises_or_is_skipped(tmp_path: Path) -> None:
    from embedpipe.data import ImageTableSource

    root = _images(tmp_path / "imgs", n=4)
    rows = ["path,label", "dog/000.png,dog", "cat/001.png,cat", "cat/gone.png,cat"]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    src = ImageTableSource(tmp_path / "t.csv", label_column="label", root=root)
    enc = load_backbone("torchvision:resnet18", weights=None, precision="fp32")
    with pytest.raises(ItemError, match="gone.png"):
        encode(src, enc, tmp_path / "a.h5", num_workers=0, progress=False)
    res = encode(src, enc, tmp_path / "b.h5", num_workers=0, on_error="skip", progress=False)
    assert (res.n_encoded, res.n_skipped) == (2, 1)
    with FeatureStore(tmp_path / "b.h5") as fs:
        assert len(fs) == 2 and len(fs.errors) == 1 and fs.complete
