"""Text → image search through a CLIP-style dual encoder: a text query over an image index goes
through the backbone's text tower (same embedding space); results equal brute force over those
features, through the API, the CLI and the server. Queries of another model are refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from embedpipe.cli.index_cmd import register
from embedpipe.errors import ConfigError, FingerprintMismatchError
from embedpipe.index import SimilarityIndex, build_index
from embedpipe.store import FeatureStore

from .conftest import brute_force_rows

dual = pytest.importorskip("embedpipe.backbones.dual_encoder", reason="no dual-encoder kind")

QUERIES = ["a red car", "a handwritten zero", "seven"]


@pytest.fixture(scope="module")
def clip_index(tmp_path_factory, image_folder):
    from embedpipe.backbones import load_backbone
    from embedpipe.data import open_source
    from embedpipe.encoding import encode

    d = tmp_path_factory.mktemp("clip")
    folder = dual.tiny_clip(str(d / "tiny_clip"))
    image = load_backbone(f"clip:{folder}", device="cpu", precision="fp32")
    store = d / "digits.h5"
    encode(
        open_source(str(image_folder)),
        image,
        store,
        batch_size=32,
        num_workers=0,
        device="cpu",
        precision="fp32",
        progress=False,
    )
    index = build_index(store, "flat")
    path = index.save(d / "digits.index")
    return path, store, image, folder


def _expected(store: Path, text_encoder, k: int) -> list[list[str]]:
    from embedpipe.encoding import encode_items

    with FeatureStore(store) as fs:
        X, ids = fs.features, fs.ids
    Q = encode_items(text_encoder, QUERIES, batch_size=8)
    return [[str(ids[r]) for r in row] for row in brute_force_rows(X, Q, k)]


def test_text_queries_over_an_image_index_equal_brute_force(clip_index):
    path, store, image, _ = clip_index
    index = SimilarityIndex.load(path)
    assert index.modality == "image"
    index.set_encoder(image)
    text = index.query_encoder("text")
    assert text.modality == "text" and text.space == image.space
    want = _expected(store, text, 5)
    got = [[h.id for h in hits] for hits in index.search_texts(QUERIES, k=5)]
    assert got == want
    assert index.query_modalities() == ["image", "text"]


def test_the_cli_and_the_server_search_an_image_index_by_text(clip_index):
    path, store, image, _ = clip_index
    text = image.encoder_for("text")
    want = _expected(store, text, 4)
    app = typer.Typer()
    register(app)
    for q, ids in zip(QUERIES, want, strict=True):
        r = CliRunner().invoke(
            app, ["search", str(path), "--query", q, "-k", "4", "--json", "--device", "cpu"]
        )
        assert r.exit_code == 0, r.output
        assert [h["id"] for h in json.loads(r.stdout)] == ids

    pytest.importorskip("fastapi")
    import httpx

    from embedpipe.index.server import create_app

    from ._http import running_server

    index = SimilarityIndex.load(path)
    index.set_encoder(image)
    with running_server(create_app(index)) as url:
        assert "text" in httpx.get(f"{url}/health", timeout=10).json()["query_modalities"]
        for q, ids in zip(QUERIES, want, strict=True):
            r = httpx.post(f"{url}/search", json={"query": q, "k": 4}, timeout=60)
            assert r.status_code == 200, r.text
            assert [x["id"] for x in r.json()["results"]] == ids
            assert all(x["thumbnail"] for x in r.json()["results"])


def test_queries_of_another_model_are_refused(clip_index, tmp_path, image_encoder):
    path, _, image, folder = clip_index
    index = SimilarityIndex.load(path)
    with pytest.raises(FingerprintMismatchError):
        index.set_encoder(image.encoder_for("text"))  # the right space, but not this index's tower
    with pytest.raises(FingerprintMismatchError):
        index.set_encoder(image_encoder)  # another model
    other = dual.tiny_clip(str(tmp_path / "other"), seed=1)
    from embedpipe.backbones import load_backbone

    with pytest.raises(FingerprintMismatchError):
        index.set_encoder(load_backbone(f"clip:{other}", device="cpu"))
    vec = np.zeros(index.dim, np.float32)
    with pytest.raises(FingerprintMismatchError):
        index.search(vec, k=1, fingerprint="fp-of-another-model")


def test_a_single_tower_image_index_still_refuses_text(image_index):
    with pytest.raises(ConfigError, match="--query-image"):
        image_index.search_texts(["a seven"], k=1)
    assert image_index.query_modalities() == ["image"]
