"""The engine's store wiring (schema 2): source order, content, kept columns, precision, the
writer lock, unique skip records, empty datasets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from embedpipe.data import ArraySource
from embedpipe.encoding import encode
from embedpipe.errors import ConfigError, StoreError
from embedpipe.store import FeatureStore, StoreLock

TEXTS = [
    "a good movie",
    "bad",
    "the plot is great and the movie is good",
    "awful awful plot",
    "great",
    "the movie",
]


class KeptSource(ArraySource):
    """Texts with one kept user column (as ``--keep-columns url`` gives)."""

    def kept_columns(self) -> dict[str, Sequence[str]]:
        return {"url": [f"http://x/{k}" for k in range(len(self))]}


@pytest.fixture()
def vectors(tmp_path: Path) -> str:
    rng = np.random.default_rng(0)
    words = ["good", "bad", "movie", "great", "awful", "plot", "the", "a", "is", "and"]
    lines = [f"{len(words)} 6"] + [
        f"{w} " + " ".join(f"{v:.4f}" for v in rng.normal(size=6)) for w in words
    ]
    p = tmp_path / "vec.txt"
    p.write_text("\n".join(lines) + "\n")
    return f"word-vectors:{p}"


def test_rows_in_source_order_with_content_and_kept_columns(tmp_path: Path, vectors: str) -> None:
    """Issue 12.5: texts are encoded length-sorted; the store used to keep that order."""
    src = KeptSource(TEXTS, labels=[0, 1, 0, 1, 0, 1], classes=["pos", "neg"])
    out = tmp_path / "s.h5"
    res = encode(src, vectors, out, batch_size=2, progress=False)
    with FeatureStore(out) as fs:
        assert fs.ids.tolist() == [str(src.ids[i]) for i in range(len(src))]
        assert fs.contents.tolist() == TEXTS and fs.positions.tolist() == list(range(6))
        assert fs.column("url").tolist() == [f"http://x/{k}" for k in range(6)]
        assert fs.labels.tolist() == [0, 1, 0, 1, 0, 1]
        assert fs.precision == res.precision and fs.precision
        from embedpipe.backbones import load_backbone
        from embedpipe.encoding import encode_items

        enc = load_backbone(vectors)
        np.testing.assert_allclose(fs.features, encode_items(enc, TEXTS), atol=1e-6)
        fs.verify()


def test_a_held_lock_makes_a_no_wait_encode_fail(tmp_path: Path, vectors: str) -> None:
    out = tmp_path / "s.h5"
    with StoreLock(out):
        with pytest.raises(StoreError, match="being written by pid"):
            encode(ArraySource(TEXTS), vectors, out, progress=False, wait=False)
    encode(ArraySource(TEXTS), vectors, out, progress=False, wait=False)  # free again


def test_skip_records_do_not_repeat_on_rerun(tmp_path: Path, vectors: str) -> None:
    """Issue 13.2: each re-run of a skip encode recorded the bad items again."""
    texts = [*TEXTS, "zzz qqq", "xxx"]  # no word in the vocabulary: bad items
    out = tmp_path / "s.h5"
    for _ in range(3):
        res = encode(ArraySource(texts), vectors, out, progress=False, on_error="skip")
    assert res.n_skipped == 2
    with FeatureStore(out) as fs:
        assert len(fs.errors) == 2 and len({i for i, _ in fs.errors}) == 2
        fs.verify()


def test_empty_dataset_is_an_error_unless_allowed(tmp_path: Path, vectors: str) -> None:
    """Issue 13.5: a header-only table gave an empty store marked complete."""
    with pytest.raises(ConfigError, match="empty.*allow_empty"):
        encode(ArraySource([]), vectors, tmp_path / "e.h5", progress=False)
    assert not (tmp_path / "e.h5").exists()
    encode(ArraySource([]), vectors, tmp_path / "e.h5", progress=False, allow_empty=True)
    with FeatureStore(tmp_path / "e.h5") as fs:
        assert len(fs) == 0 and fs.complete


def test_resume_at_another_precision_is_refused(tmp_path: Path, vectors: str) -> None:
    """Issue 13.5: precision was not in the fingerprint, so a resume could mix precisions."""
    from embedpipe.store import StoreWriter

    out = tmp_path / "s.h5"
    encode(ArraySource(TEXTS[:3]), vectors, out, progress=False)
    with FeatureStore(out) as fs:
        fp, prec = fs.fingerprint, fs.precision
    other = "bf16" if prec != "bf16" else "fp32"
    with pytest.raises(StoreError, match=f"precision '{prec}'"):
        StoreWriter.open_append(out, fingerprint=fp, precision=other)
    with pytest.raises(StoreError, match=f"encoded at precision '{prec}'"):
        encode(
            ArraySource(TEXTS),
            vectors,
            tmp_path / "t.h5",
            progress=False,
            reuse_from=[out],
            precision=other,
        )
