"""Raw queries through the index's own backbone: real MiniLM texts, real MobileNetV2 images."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from embedpipe.errors import ConfigError, FingerprintMismatchError, ItemError


@pytest.mark.parametrize(
    ("query", "topic"),
    [
        ("astronauts flying to the moon in a spaceship", "space"),
        ("a recipe for pasta with garlic", "cooking"),
        ("the player kicked the ball into the net", "football"),
    ],
)
def test_text_query_finds_its_topic(text_index, query, topic):
    hits = text_index.search_texts([query], k=5)[0]
    assert [h.label for h in hits].count(topic) >= 4
    assert hits[0].label == topic and hits[0].id.startswith(topic)


def test_text_queries_are_encoded_like_the_store(text_index, text_store):
    """The first sentence of the store as a query finds itself with similarity 1."""
    from .conftest import TOPICS

    hit = text_index.search_texts(TOPICS["cooking"][2], k=1)[0][0]
    assert hit.id == "cooking-2" and hit.score == pytest.approx(1.0, abs=1e-4)


def test_image_query_finds_the_same_image_and_its_class(image_index, image_folder):
    path = image_folder / "digit7" / "3.png"
    hits = image_index.search_images([path], k=4)[0]
    assert hits[0].id == "digit7/3.png" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].label == "digit7"
    # bytes and PIL images work too
    raw = path.read_bytes()
    assert image_index.search_images(raw, k=1)[0][0].id == "digit7/3.png"
    assert image_index.search_images([Image.open(path)], k=1)[0][0].id == "digit7/3.png"


def test_image_index_knows_where_its_images_are(image_index, image_folder):
    assert image_index.has_images
    assert image_index.image_path("digit0/1.png") == (image_folder / "digit0" / "1.png").resolve()
    assert image_index.image_path("../images/digit0/1.png") is None  # not an indexed id
    assert image_index.image_path("nope.png") is None


def test_wrong_modality_is_a_clear_error(text_index, image_index, image_folder):
    with pytest.raises(ConfigError, match="backbone encodes texts.*--query TEXT"):
        text_index.search_images([image_folder / "digit0" / "0.png"])
    with pytest.raises(ConfigError, match="backbone encodes images.*--query-image"):
        image_index.search_texts(["a zero"])


def test_bad_raw_queries_are_item_errors(text_index, image_index, tmp_path):
    with pytest.raises(ItemError, match="empty text query"):
        text_index.search_texts(["   "])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(ItemError, match="bad.png"):
        image_index.search_images([bad])
    with pytest.raises(ItemError, match="not a readable image"):
        image_index.search_images([b"hello"])
    buf = io.BytesIO()
    Image.new("RGB", (40, 40)).save(buf, "PNG")
    with pytest.raises(ItemError, match="corrupt or truncated"):
        image_index.search_images([buf.getvalue()[:60]])


def test_an_encoder_of_another_backbone_is_refused(image_index, text_encoder):
    with pytest.raises(FingerprintMismatchError, match="mobilenet_v2"):
        image_index.set_encoder(text_encoder)


def test_the_encoder_is_reloaded_from_the_index_provenance(text_store):
    """A loaded index has no encoder: it rebuilds MiniLM from the spec in its metadata."""
    from embedpipe.index import build_index

    index = build_index(text_store, "flat")
    hits = index.search_texts("goal scored by the striker", k=3)[0]
    assert hits[0].label == "football" and index.encoder().fingerprint == index.fingerprint
