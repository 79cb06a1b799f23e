"""Errors carry the item and the fix, and survive pickling (worker processes, Ray)."""

from __future__ import annotations

import pickle

from embedpipe.errors import FingerprintMismatchError, ItemError


def test_item_error_names_item_and_fix_and_pickles() -> None:
    e = pickle.loads(pickle.dumps(ItemError("img/1.jpg", "cannot decode image")))
    assert e.item_id == "img/1.jpg" and e.reason == "cannot decode image"
    assert "'img/1.jpg'" in str(e) and "on_error='skip'" in str(e)


def test_fingerprint_mismatch_pickles() -> None:
    e = pickle.loads(
        pickle.dumps(FingerprintMismatchError("store s.h5", "aaa", "bbb", "Re-encode."))
    )
    assert (e.expected, e.found) == ("aaa", "bbb")
    assert "aaa" in str(e) and "bbb" in str(e) and "Re-encode." in str(e)
