"""Small deterministic stores with planted faults, for the curate tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedpipe.store import StoreWriter

CLASSES = ["ant", "bee", "cat"]
DIM = 32


def _hash(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


@dataclass
class Split:
    X: np.ndarray
    labels: np.ndarray
    texts: list[str]
    ids: list[str] = field(default_factory=list)

    def write(self, path: Path) -> Path:
        ids = self.ids or [f"{path.stem}-{i}" for i in range(len(self.texts))]
        w = StoreWriter.create(
            path, dim=DIM, fingerprint="fp-test", backbone={"name": "test"}, classes=CLASSES
        )
        w.append(
            self.X,
            ids,
            [_hash(t) for t in self.texts],
            labels=self.labels,
            contents=self.texts,
        )
        w.finalize()
        return path


def clean_split(n: int, seed: int, name: str) -> Split:
    """``n`` items in three well-separated Gaussian classes, each with its own text."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(3, DIM)) * 4.0
    y = np.arange(n) % 3
    X = centres[y] + rng.normal(size=(n, DIM))
    texts = [f"{name} item {i} about a {CLASSES[c]}" for i, c in enumerate(y)]
    return Split(X.astype(np.float32), y.astype(np.int64), texts)


@dataclass
class Planted:
    train: Path
    test: Path
    flipped: list[str]
    near_dup: tuple[str, str]
    exact_dup: tuple[str, str]
    leak: tuple[str, str]
    outlier: str


def planted(tmp: Path) -> Planted:
    """train (240 rows) and test (60 rows) with 6 label flips, a near-duplicate pair, an
    exact-duplicate pair, a train/test leak and an outlier, all in train."""
    train, test = clean_split(240, 1, "train"), clean_split(60, 2, "test")
    flipped = [3, 40, 77, 110, 150, 201]
    for i in flipped:
        train.labels[i] = (train.labels[i] + 1) % 3
    # near-duplicate: row 10 is row 9 plus a tiny change, with its own text
    train.X[10] = train.X[9] + np.random.default_rng(5).normal(size=DIM) * 0.01
    train.texts[10] = train.texts[9].upper()
    train.labels[10] = train.labels[9]
    # exact duplicate: row 21 is row 20 (same text, same features)
    train.X[21], train.texts[21], train.labels[21] = train.X[20], train.texts[20], train.labels[20]
    # leak: train row 30 is test row 5
    train.X[30], train.texts[30], train.labels[30] = test.X[5], test.texts[5], test.labels[5]
    # outlier: row 50 far from every class
    train.X[50] = np.random.default_rng(7).normal(size=DIM) * 4.0 + 25.0
    train.texts[50] = "a blurry photo of nothing"
    tr, te = train.write(tmp / "train.h5"), test.write(tmp / "test.h5")
    return Planted(
        tr,
        te,
        flipped=[f"train-{i}" for i in flipped],
        near_dup=("train-9", "train-10"),
        exact_dup=("train-20", "train-21"),
        leak=("train-30", "test-5"),
        outlier="train-50",
    )
