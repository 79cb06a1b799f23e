"""Fixtures of tests/index: feature stores of clustered vectors, real encoded text and images."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from embedpipe.store import StoreWriter

DIM = 384
N_BLOBS = 20_000
N_CENTERS = 50
FAKE_BACKBONE = {"kind": "synthetic", "name": "blobs", "modality": "text"}

TOPICS = {
    "space": [
        "The rocket lifted off from the launch pad carrying three astronauts.",
        "Astronomers discovered a new exoplanet orbiting a distant star.",
        "The space station crew performed a spacewalk to repair a solar panel.",
        "A probe landed on the surface of Mars and sent back photographs.",
        "The telescope captured images of a galaxy billions of light years away.",
        "Engineers tested the engines of the lunar lander before the mission.",
        "The comet's tail glowed as it passed close to the sun.",
        "Mission control lost contact with the satellite for an hour.",
    ],
    "cooking": [
        "Simmer the tomato sauce with garlic and basil for twenty minutes.",
        "Knead the bread dough until it is smooth and elastic.",
        "Whisk the eggs with sugar before folding in the flour.",
        "Roast the vegetables in a hot oven with olive oil and salt.",
        "The chef seasoned the soup with pepper and fresh herbs.",
        "Bake the cake at 180 degrees until a skewer comes out clean.",
        "Marinate the chicken overnight in yogurt and spices.",
        "Fry the onions slowly until they turn golden and sweet.",
    ],
    "football": [
        "The striker scored a goal in the final minute of the match.",
        "The goalkeeper saved a penalty and the crowd roared.",
        "The coach changed tactics at half time and the team won.",
        "The defender received a red card for a dangerous tackle.",
        "Fans sang in the stadium as their club lifted the trophy.",
        "The midfielder passed the ball forward to the winger.",
        "The referee blew the whistle to end the championship game.",
        "The team trained hard before the derby against their rivals.",
    ],
}


def write_store(
    path: Path,
    X: np.ndarray,
    *,
    labels: Sequence[int] | None = None,
    classes: Sequence[str] = (),
    ids: Sequence[str] | None = None,
    fingerprint: str = "fp-blobs",
    backbone: dict | None = None,
    complete: bool = True,
    chunk: int = 4096,
    contents: Sequence[str] | None = None,
) -> Path:
    """Write vectors into a real feature store, in appended chunks like an encode does."""
    n = len(X)
    ids = list(ids) if ids is not None else [f"v{i:06d}" for i in range(n)]
    labels = np.asarray(labels if labels is not None else np.full(n, -1), np.int64)
    w = StoreWriter.create(
        path,
        dim=X.shape[1],
        fingerprint=fingerprint,
        backbone=backbone or FAKE_BACKBONE,
        classes=list(classes),
        overwrite=True,
    )
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        hashes = [hashlib.blake2b(i.encode(), digest_size=16).digest() for i in ids[s:e]]
        if contents is None:
            w.append(X[s:e], ids[s:e], hashes, labels[s:e])
        else:
            w.append(X[s:e], ids[s:e], hashes, labels[s:e], contents=list(contents[s:e]))
    if complete:
        w.finalize()
    else:
        w.close()
    return path


@pytest.fixture(scope="session")
def blob_centers() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.uniform(-4.0, 4.0, size=(N_CENTERS, DIM)).astype(np.float64)


@pytest.fixture(scope="session")
def blobs(
    tmp_path_factory: pytest.TempPathFactory, blob_centers: np.ndarray
) -> tuple[Path, np.ndarray, np.ndarray]:
    """20k clustered 384-d vectors (sklearn make_blobs) in a store: (path, X, y)."""
    X, y = make_blobs(N_BLOBS, centers=blob_centers, cluster_std=1.0, random_state=1)
    X = X.astype(np.float32)
    path = tmp_path_factory.mktemp("blobs") / "blobs.h5"
    write_store(path, X, labels=y, classes=[f"blob{i}" for i in range(N_CENTERS)])
    return path, X, y


@pytest.fixture(scope="session")
def blob_queries(
    tmp_path_factory: pytest.TempPathFactory, blob_centers: np.ndarray
) -> tuple[Path, np.ndarray]:
    """500 fresh queries from the same clusters (never in the index), in a store."""
    Q, _ = make_blobs(500, centers=blob_centers, cluster_std=1.0, random_state=2)
    Q = Q.astype(np.float32)
    path = tmp_path_factory.mktemp("queries") / "queries.h5"
    write_store(path, Q, ids=[f"q{i}" for i in range(len(Q))])
    return path, Q


@pytest.fixture(scope="session")
def auto_index(blobs: tuple[Path, np.ndarray, np.ndarray]):
    """The ``auto`` index of the 20k blobs, built once."""
    from embedpipe.index import build_index

    return build_index(blobs[0], "auto", target_recall=0.95, k=10)


@pytest.fixture(scope="session")
def text_encoder():
    """The real offline MiniLM, loaded once."""
    from embedpipe.backbones import load_backbone

    return load_backbone("minilm", device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def text_store(tmp_path_factory: pytest.TempPathFactory, text_encoder) -> Path:
    """24 sentences on three topics encoded by the real MiniLM (offline)."""
    import pandas as pd

    from embedpipe.data import open_source
    from embedpipe.encoding import encode

    d = tmp_path_factory.mktemp("texts")
    rows = [
        {"id": f"{topic}-{i}", "text": t, "topic": topic}
        for topic, texts in TOPICS.items()
        for i, t in enumerate(texts)
    ]
    pd.DataFrame(rows).to_csv(d / "texts.csv", index=False)
    src = open_source(
        str(d / "texts.csv"), text_column="text", label_column="topic", id_column="id"
    )
    out = d / "texts.h5"
    encode(src, text_encoder, out, batch_size=32, device="cpu", precision="fp32", progress=False)
    return out


@pytest.fixture(scope="session")
def text_index(text_store: Path, text_encoder):
    """An exact index of the sentences, its encoder already loaded."""
    from embedpipe.index import build_index

    index = build_index(text_store, "flat")
    index.set_encoder(text_encoder)
    return index


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits (sklearn) as PNG files in class sub-folders: 8 per class, classes 0, 1, 7."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path_factory.mktemp("digits") / "images"
    for c in (0, 1, 7):
        (root / f"digit{c}").mkdir(parents=True)
        for j, i in enumerate(np.flatnonzero(digits.target == c)[:8]):
            px = (digits.images[i] * (255 / 16)).astype(np.uint8)
            Image.fromarray(px).resize((32, 32), Image.NEAREST).save(
                root / f"digit{c}" / f"{j}.png"
            )
    return root


@pytest.fixture(scope="session")
def image_encoder():
    """The real offline MobileNetV2 (ImageNet weights), loaded once."""
    from embedpipe.backbones import load_backbone

    return load_backbone("mobilenet_v2-imagenet", device="cpu", precision="fp32")


@pytest.fixture(scope="session")
def image_store(
    tmp_path_factory: pytest.TempPathFactory, image_folder: Path, image_encoder
) -> Path:
    """The digit images encoded by the real offline MobileNetV2."""
    from embedpipe.data import open_source
    from embedpipe.encoding import encode

    out = tmp_path_factory.mktemp("imgstore") / "digits.h5"
    encode(
        open_source(str(image_folder)),
        image_encoder,
        out,
        batch_size=32,
        num_workers=0,
        device="cpu",
        precision="fp32",
        progress=False,
    )
    return out


@pytest.fixture(scope="session")
def image_index(image_store: Path, image_encoder):
    """An exact index of the digit images, its encoder already loaded."""
    from embedpipe.index import build_index

    index = build_index(image_store, "flat")
    index.set_encoder(image_encoder)
    return index


@pytest.fixture(scope="session")
def rotten_stores(tmp_path_factory: pytest.TempPathFactory, text_encoder) -> tuple[Path, Path]:
    """Real MiniLM embeddings of Rotten Tomatoes snippets: 1,500 train rows (the index) and
    300 test rows (held-out queries), encoded once per session."""
    from embedpipe.data import open_source
    from embedpipe.encoding import encode

    d = tmp_path_factory.mktemp("rotten")
    out = []
    for split, limit in (("train", 1500), ("test", 300)):
        src = open_source(f"builtin:rotten_tomatoes?split={split}&limit={limit}")
        path = d / f"{split}.h5"
        encode(
            src, text_encoder, path, batch_size=64, device="cpu", precision="auto", progress=False
        )
        out.append(path)
    return out[0], out[1]


def brute_force_rows(X: np.ndarray, Q: np.ndarray, k: int, metric: str = "cosine") -> np.ndarray:
    """An independent exact search in numpy (float64): the ``k`` nearest rows of each query."""
    X = np.asarray(X, np.float64)
    Q = np.asarray(Q, np.float64)
    if metric == "cosine":
        X = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
        Q = Q / np.maximum(np.linalg.norm(Q, axis=1, keepdims=True), 1e-12)
    cost = ((Q[:, None, :] - X[None]) ** 2).sum(-1) if metric == "l2" else -(Q @ X.T)
    return np.argsort(cost, axis=1, kind="stable")[:, :k]


def recall_of(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each query's true neighbours among those found."""
    return float(
        np.mean(
            [
                len(set(f.tolist()) & set(t.tolist())) / len(t)
                for f, t in zip(found, truth, strict=True)
            ]
        )
    )


@pytest.fixture(scope="session")
def content_store(tmp_path_factory: pytest.TempPathFactory, text_encoder) -> Path:
    """The 24 topic sentences encoded by the real MiniLM, each row keeping its text as content
    (written through the store's own writer, as an encode of a text source does)."""
    from embedpipe.encoding import encode_items

    texts = [t for topic in TOPICS.values() for t in topic]
    topics = [name for name, topic in TOPICS.items() for _ in topic]
    X = encode_items(text_encoder, texts, batch_size=32)
    return write_store(
        tmp_path_factory.mktemp("content") / "sentences.h5",
        X,
        ids=[f"s{i:02d}" for i in range(len(texts))],
        labels=[list(TOPICS).index(t) for t in topics],
        classes=list(TOPICS),
        fingerprint=text_encoder.fingerprint,
        backbone=json.loads(text_encoder.spec.to_json()),
        contents=texts,
    )


@pytest.fixture(scope="session")
def content_index(content_store: Path, text_encoder):
    from embedpipe.index import build_index

    index = build_index(content_store, "flat")
    index.set_encoder(text_encoder)
    return index
