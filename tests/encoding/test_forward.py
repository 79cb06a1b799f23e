"""The model side of the encode loop: out-of-memory halving (tested on CPU with an injected
CUDA OOM) and the host→device prefetch's pass-through off CUDA."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from embedpipe.backbones import load_backbone
from embedpipe.data import open_source
from embedpipe.encoding import encode
from embedpipe.encoding.forward import OomGuard, batch_len, is_oom, prefetch_to_device, slice_batch
from embedpipe.store import FeatureStore

OPTS = {"batch_size": 8, "precision": "fp32", "progress": False, "num_workers": 0}


class Wrapped:
    """A real encoder, seen through a wrapper whose subclasses change one call."""

    def __init__(self, enc: Any) -> None:
        self.enc = enc
        self.spec, self.dim, self.modality = enc.spec, enc.dim, enc.modality
        self.device, self.precision = enc.device, enc.precision
        self.preprocess, self.collate = enc.preprocess, enc.collate

    @property
    def fingerprint(self) -> str:
        return self.enc.fingerprint

    def to(self, device: Any, precision: str = "fp32") -> Wrapped:
        self.enc.to(device, precision)
        return self


class OomAbove(Wrapped):
    """A real encoder that raises CUDA's out-of-memory error on batches above ``limit`` items."""

    def __init__(self, enc: Any, limit: int) -> None:
        super().__init__(enc)
        self.limit, self.sizes = limit, []

    def encode(self, batch: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(batch))
        if len(batch) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.enc.encode(batch)


@pytest.fixture(scope="module")
def encoder():
    return load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)


@pytest.fixture(scope="module")
def digits():
    return open_source("builtin:digits?limit=20")


def test_oom_halves_the_batch_logs_it_and_loses_nothing(
    tmp_path: Path, encoder, digits, caplog: pytest.LogCaptureFixture
) -> None:
    plain = encode(digits, encoder, tmp_path / "plain.h5", **OPTS)
    flaky = OomAbove(encoder, limit=3)
    with caplog.at_level(logging.WARNING, logger="embedpipe.encoding"):
        res = encode(digits, flaky, tmp_path / "oom.h5", **OPTS)
    assert res.n_encoded == plain.n_encoded == 20
    halvings = [r.getMessage() for r in caplog.records if "halved" in r.getMessage()]
    assert halvings and "batch of 8 items: halved to 4" in halvings[0]
    # later batches are split up front to the size that fit: no batch above 2 after the first
    first_ok = flaky.sizes.index(2)
    assert max(flaky.sizes[first_ok:]) <= 3 and sum(s for s in flaky.sizes if s <= 3) == 20
    with FeatureStore(tmp_path / "plain.h5") as a, FeatureStore(tmp_path / "oom.h5") as b:
        assert a.ids.tolist() == b.ids.tolist()
        np.testing.assert_allclose(b.features, a.features, rtol=1e-4, atol=1e-5)


def test_an_item_that_never_fits_raises_the_oom(tmp_path: Path, encoder, digits) -> None:
    with pytest.raises(torch.cuda.OutOfMemoryError):
        encode(digits, OomAbove(encoder, limit=0), tmp_path / "never.h5", **OPTS)


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def broken(batch: torch.Tensor) -> torch.Tensor:
        calls.append(len(batch))
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        OomGuard(broken)(torch.zeros(4, 2))
    assert calls == [4]
    assert is_oom(RuntimeError("CUDA error: out of memory")) and not is_oom(RuntimeError("x"))


def test_batch_helpers_and_prefetch_off_cuda() -> None:
    b = {"input_ids": torch.arange(10).view(5, 2), "attention_mask": torch.ones(5, 2)}
    assert batch_len(b) == 5 and batch_len(object()) is None
    assert slice_batch(b, 3, 5)["attention_mask"].shape == (2, 2)
    items = [[torch.zeros(1)], [torch.ones(1)]]
    out = list(
        prefetch_to_device(iter(items), torch.device("cpu"), lambda x: x[0], lambda x, m: None)
    )
    assert out == items


class FailsOnCall(Wrapped):
    """A real encoder whose ``encode_on_device`` raises on its ``n``-th call."""

    def __init__(self, enc: Any, n: int) -> None:
        super().__init__(enc)
        self.n, self.calls, self.encode = n, 0, enc.encode

    def encode_on_device(self, batch: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.n:
            raise RuntimeError("device-side assert triggered")
        return self.enc.encode_on_device(batch)


def test_one_batch_in_flight_stores_the_same_rows(
    tmp_path: Path, encoder, digits, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CUDA loop (batch i stored after batch i + 1 is launched), run on the CPU."""
    import embedpipe.encoding.engine as engine

    plain = encode(digits, encoder, tmp_path / "plain.h5", **OPTS)
    monkeypatch.setattr(engine, "keeps_one_in_flight", lambda device, enc: True)
    lagged = encode(digits, encoder, tmp_path / "lag.h5", **OPTS)
    assert lagged.n_encoded == plain.n_encoded == 20
    with FeatureStore(tmp_path / "plain.h5") as a, FeatureStore(tmp_path / "lag.h5") as b:
        assert a.ids.tolist() == b.ids.tolist()
        np.testing.assert_array_equal(a.features, b.features)
    # a forward that fails on the 3rd batch: the 2nd, still waiting to be stored, is kept
    flaky = FailsOnCall(encoder, n=3)
    with pytest.raises(RuntimeError, match="device-side assert"):
        encode(digits, flaky, tmp_path / "fail.h5", **OPTS)
    with FeatureStore(tmp_path / "fail.h5") as fs:
        assert len(fs) == 16 and not fs.complete  # batches 1 and 2 of 8


def test_in_flight_depth_zero_commits_at_once() -> None:
    from embedpipe.encoding.forward import InFlight

    done: list[tuple[list[int], float]] = []
    now = InFlight(lambda pos, x: done.append((pos, float(x.sum()))), depth=0)
    now.push([0], torch.ones(1, 2))
    assert done == [([0], 2.0)]
    with pytest.raises(ValueError, match="depth"):
        InFlight(lambda pos, x: None, depth=2)
