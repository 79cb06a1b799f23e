"""A NUL character in a text (issue 22, item 5): HDF5 strings cannot hold one, and the encode
died on it with a traceback naming no item, on every resume too. The store's copy shows it as
U+2400; the features come from the text as given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.errors import StoreError
from embedpipe.store import FeatureStore, StoreWriter


def _encode(csv: Path, vec: Path, out: Path, *extra: str) -> None:
    try:
        main(
            [
                "encode", "--data", str(csv), "--text-column", "text", "--label-column", "label",
                "--keep-columns", "note", "--backbone", f"word-vectors:{vec}", "--out", str(out),
                "-q", *extra,
            ]
        )  # fmt: skip
    except SystemExit as e:
        assert e.code in (0, None), e.code


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_a_nul_in_a_text_is_encoded_and_shown(tmp_path: Path, on_error: str) -> None:
    vec = tmp_path / "v.txt"
    vec.write_text("good 0.1 0.2\nbad 0.3 0.1\nmovie 0.5 0.5\nplot 0.2 0.9\n")
    csv = tmp_path / "t.csv"
    csv.write_bytes(
        b"text,label,note\ngood movie,pos,a\nbad\x00 plot,neg,b\x00c\nthe movie is good,pos,d\n"
    )
    out = tmp_path / "s.h5"
    _encode(csv, vec, out, "--on-error", on_error)
    _encode(csv, vec, out, "--on-error", on_error)  # a re-run (resume) works too
    from embedpipe import load_backbone

    enc = load_backbone(f"word-vectors:{vec}")
    with FeatureStore(out) as fs:
        fs.verify()
        assert fs.contents.tolist()[1] == "bad\u2400 plot"
        assert fs.column("note").tolist()[1] == "b\u2400c"
        assert fs.errors == []
        want = enc.encode(enc.collate([enc.preprocess("bad\x00 plot")]))
        assert np.allclose(fs.features[1], np.asarray(want, np.float32)[0])


def test_an_id_with_a_nul_is_a_clear_error(tmp_path: Path) -> None:
    w = StoreWriter.create(tmp_path / "s.h5", dim=2, fingerprint="f", backbone={})
    with pytest.raises(StoreError, match="contains a NUL character"):
        w.append(np.ones((1, 2)), ["a\x00b"], [bytes(16)])
    w.close()
