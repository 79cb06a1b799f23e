"""The local executor: in-process by default, or one worker process per slot (per GPU with
``gpus_per_worker=1``); each process builds its worker once."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from embedpipe.errors import ConfigError
from embedpipe.executors import get_executor


class Scale:
    """A worker factory: built once per process with ``shared``; tasks run on it."""

    def __init__(self, shared: int) -> None:
        self.shared, self.pid = shared, os.getpid()

    def __call__(self, task: int) -> tuple[int, int]:
        if task < 0:
            raise ValueError(f"negative task {task}")
        return task * self.shared, self.pid


def test_worker_processes_run_every_task_and_reraise_errors() -> None:
    with get_executor("local", num_workers=2) as ex:
        assert ex.parallelism == 2 and not ex.in_process
        done = list(ex.map(Scale, [1, 2, 3, 4, 5], shared=10))
        assert sorted(c.value[0] for c in done) == [10, 20, 30, 40, 50]
        assert sorted(c.index for c in done) == [0, 1, 2, 3, 4]
        pids = {c.value[1] for c in done}
        assert os.getpid() not in pids and 1 <= len(pids) <= 2
        with pytest.raises(ValueError, match="negative task -1"):
            list(ex.map(Scale, [1, -1], shared=1))


def test_gpus_per_worker_needs_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match=r"gpus_per_worker=1 needs a visible CUDA GPU"):
        _ = get_executor("local", gpus_per_worker=1).parallelism


@pytest.mark.slow
def test_sharded_encode_on_worker_processes_equals_one_process(tmp_path: Path) -> None:
    from embedpipe.backbones import load_backbone
    from embedpipe.data import open_source
    from embedpipe.encoding import encode
    from embedpipe.store import FeatureStore

    src = open_source("builtin:digits?limit=32")
    enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    opts = {"batch_size": 8, "precision": "fp32", "progress": False, "num_workers": 0}
    encode(src, enc, tmp_path / "one.h5", **opts)
    res = encode(
        src,
        enc,
        tmp_path / "two.h5",
        executor={"name": "local", "num_workers": 2},
        n_shards=2,
        **opts,
    )
    assert res.n_shards == 2 and res.n_encoded == 32
    assert len({o.worker for o in res.shards}) >= 1 and all(o.worker for o in res.shards)
    with FeatureStore(tmp_path / "one.h5") as a, FeatureStore(tmp_path / "two.h5") as b:
        assert a.ids.tolist() == b.ids.tolist()
        np.testing.assert_allclose(b.features, a.features, rtol=1e-5, atol=1e-6)
