"""Inputs that used to end in a traceback or be read wrongly (issue 22, item 8): an image
stretched past any resizable shape, a literal "NaN" label, a malformed JSONL line."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from PIL import Image

from embedpipe.data import open_source
from embedpipe.errors import ConfigError, ItemError


def test_a_strip_image_is_an_item_error_before_it_is_decoded(tmp_path: Path) -> None:
    from embedpipe.data.images import decode_image_bytes, open_image

    p = tmp_path / "strip.png"
    Image.new("L", (1, 100_000)).save(p)
    with pytest.raises(ItemError, match=r"1 x 100,000 pixels: its long side is 100,000 times"):
        open_image(p, "strip")
    buf = io.BytesIO()
    Image.new("L", (100_000, 1)).save(buf, format="PNG")
    with pytest.raises(ItemError, match=r"100,000 x 1 pixels"):
        decode_image_bytes(buf.getvalue(), "strip")
    from embedpipe.index.queries import decode_image  # the server's upload path

    with pytest.raises(ItemError, match=r"100,000 x 1 pixels"):
        decode_image(buf.getvalue(), "upload")
    Image.new("L", (640, 20)).save(p)  # 32:1 is fine
    assert open_image(p, "ok").size == (640, 20)


def test_a_nan_label_is_missing_like_a_blank_one(tmp_path: Path, caplog) -> None:
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\na,pos\nb,NaN\nc,\nd,neg\ne,nan\n")
    with caplog.at_level(logging.WARNING, logger="embedpipe"):
        src = open_source(str(csv), text_column="text", label_column="label")
    assert src.classes == ["neg", "pos"]
    assert src.labels.tolist() == [1, -1, -1, 0, -1]
    assert "2 label(s) read 'NaN'; they are taken as missing" in caplog.text


def test_a_malformed_jsonl_line_is_one_item_naming_its_line(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(
        '{"id": "a", "text": "good", "label": "pos"}\n'
        '{"id": "b", "text": "bad", "label": "neg"\n'
        "\n"
        '{"id": "c", "text": "fine", "label": "neg"}\n'
        "[1, 2]\n"
    )
    src = open_source(str(f), text_column="text", label_column="label", id_column="id")
    assert list(src.ids) == ["a", "t.jsonl:2", "c", "t.jsonl:5"]
    assert len(src) == 4 and src.load(0) == "good" and src.load(2) == "fine"
    with pytest.raises(ItemError, match=r"line 2 of '.*t\.jsonl' is not valid JSON"):
        src.load(1)
    with pytest.raises(ItemError, match=r"line 5 of '.*t\.jsonl' is not a JSON object"):
        src.content_hash(3)
    f.write_text("{oops\n[1]\n")
    with pytest.raises(ConfigError, match=r"line 1 of .* is not valid JSON"):
        open_source(str(f), text_column="text")
