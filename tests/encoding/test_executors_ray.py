"""Sharded encoding and index adds on a real local Ray cluster (2 workers on this machine)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ray = pytest.importorskip("ray")
faiss = pytest.importorskip("faiss")

from embedpipe.backbones import load_backbone  # noqa: E402
from embedpipe.data import BaseSource, open_source  # noqa: E402
from embedpipe.encoding import encode, encode_sharded  # noqa: E402
from embedpipe.errors import ConfigError, ItemError, StoreError  # noqa: E402
from embedpipe.executors import get_executor  # noqa: E402
from embedpipe.index.parallel_add import add_shards_to_index  # noqa: E402
from embedpipe.store import FeatureStore  # noqa: E402
from embedpipe.store.shards import shard_paths  # noqa: E402

N, BATCH, SHARDS = 96, 16, 3
ENCODE = {"batch_size": BATCH, "precision": "fp32", "progress": False, "num_workers": 0}


class Wrapped(BaseSource):
    """The items of another source; the subclasses break one item's loading."""

    def __init__(self, inner: Any, at: int) -> None:
        self.inner, self.at = inner, at
        self.modality, self.ids, self.labels, self.classes = (
            inner.modality,
            inner.ids,
            inner.labels,
            inner.classes,
        )

    def content_hash(self, i: int) -> bytes:
        return self.inner.content_hash(i)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


class KilledOnce(Wrapped):
    """SIGKILLs the process loading item ``at``, the first time only (``marker`` remembers)."""

    def __init__(self, inner: Any, at: int, marker: str) -> None:
        super().__init__(inner, at)
        self.marker = marker

    def load(self, i: int) -> Any:
        if i == self.at and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            time.sleep(1.0)  # the writer thread commits the batch before this one
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner.load(i)


class BadItem(Wrapped):
    def load(self, i: int) -> Any:
        if i == self.at:
            raise ItemError(self.ids[i], "cannot decode image")
        return self.inner.load(i)


@pytest.fixture(scope="module")
def ray_executor():
    # Module scope: its actors hold the 2 CPUs, and must be gone before another module's
    # Ray run asks for workers (Ray would queue those actors forever).
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        configure_logging=False,
        object_store_memory=100 * 2**20,
    )
    ex = get_executor("ray", num_workers=2, cpus_per_worker=1)
    yield ex
    ex.close()
    ray.shutdown()


@pytest.fixture(scope="module")
def source():
    return open_source(f"builtin:digits?limit={N}")


@pytest.fixture(scope="module")
def encoder():
    return load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, source, encoder) -> Path:
    """The same encode by the local, single-process engine."""
    out = tmp_path_factory.mktemp("ref") / "local.h5"
    encode(source, encoder, out, **ENCODE)
    return out


@pytest.fixture(scope="module")
def ray_store(tmp_path_factory, ray_executor, source, encoder) -> tuple[Path, Any]:
    """The encode sharded on Ray (tests that alter it restore it)."""
    out = tmp_path_factory.mktemp("ray") / "ray.h5"
    return out, encode_sharded(
        source, encoder, out, executor=ray_executor, n_shards=SHARDS, **ENCODE
    )


def assert_same_store(a: Path, b: Path) -> None:
    with FeatureStore(a) as x, FeatureStore(b) as y:
        assert len(x) == len(y) == N
        assert y.ids.tolist() == x.ids.tolist()
        assert len(set(y.ids.tolist())) == N  # every row once
        np.testing.assert_array_equal(y.labels, x.labels)
        np.testing.assert_array_equal(y.content_hashes, x.content_hashes)
        np.testing.assert_array_equal(y.features, x.features)  # bit-identical
        assert (y.fingerprint, y.dataset_digest, y.classes) == (
            x.fingerprint,
            x.dataset_digest,
            x.classes,
        )
        y.verify()


def test_ray_encode_equals_local_run_row_by_row(ray_store, reference):
    out, res = ray_store
    assert res.executor == "ray" and res.n_shards == SHARDS and res.n_encoded == N
    assert len({o.worker for o in res.shards}) == 2  # both workers took shards
    assert_same_store(reference, out)


def test_deleted_shard_is_an_error_and_a_rerun_rebuilds_only_it(
    ray_store, ray_executor, source, encoder, reference
):
    out, _ = ray_store
    kept = {p: p.stat().st_mtime_ns for p in shard_paths(out)}
    victim = shard_paths(out)[1]
    victim.unlink()
    with pytest.raises(
        StoreError, match=r"1 of 3 shard files are missing \(32 rows\).*" + victim.name
    ):
        FeatureStore(out)
    again = encode_sharded(source, encoder, out, executor=ray_executor, n_shards=SHARDS, **ENCODE)
    assert (again.n_shards_cached, again.n_encoded) == (2, 32)
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items() if p != victim)  # not rewritten
    assert_same_store(reference, out)


def test_worker_killed_mid_shard_is_requeued_and_resumed(
    tmp_path, ray_executor, source, encoder, reference
):
    marker = tmp_path / "killed"
    dying = KilledOnce(source, at=56, marker=str(marker))  # shard 1 (32..63), its 2nd batch
    out = tmp_path / "ray.h5"
    res = encode_sharded(dying, encoder, out, executor=ray_executor, n_shards=SHARDS, **ENCODE)
    assert marker.exists()  # a worker really was killed
    killed = res.shards[1]
    assert killed.attempts == 2 and killed.worker.split()[1] != marker.read_text()
    # The new worker resumed the partial shard: the batch committed before the kill is kept.
    assert (killed.n_resumed, killed.n_encoded) == (16, 16)
    assert [o.attempts for o in (res.shards[0], res.shards[2])] == [1, 1]
    assert_same_store(reference, out)
    assert not list(out.with_suffix(".shards").glob("*.partial"))


def test_faiss_add_on_ray_equals_sequential_add(ray_store, ray_executor, reference):
    out, _ = ray_store
    with FeatureStore(reference) as fs:
        x = fs.features
    empty = faiss.index_factory(x.shape[1], "IVF4,Flat")
    empty.train(x)
    seq = faiss.deserialize_index(faiss.serialize_index(empty))
    seq.add(x)
    merged = add_shards_to_index(faiss.serialize_index(empty), out, executor=ray_executor)
    assert merged.ntotal == N
    assert bytes(faiss.serialize_index(merged)) == bytes(faiss.serialize_index(seq))
    merged.nprobe = seq.nprobe = 4
    np.testing.assert_array_equal(merged.search(x[:10], 5)[1], seq.search(x[:10], 5)[1])


def test_item_error_in_worker_is_raised_as_itself(tmp_path, ray_executor, source, encoder):
    bad = BadItem(source, at=70)
    with pytest.raises(ItemError, match="cannot decode image") as info:
        encode_sharded(
            bad, encoder, tmp_path / "bad.h5", executor=ray_executor, n_shards=SHARDS, **ENCODE
        )
    assert info.value.item_id == source.ids[70]


def test_workers_never_ask_for_more_than_the_cluster_holds(ray_executor, caplog):
    assert ray_executor.parallelism == 2
    with get_executor("ray", num_workers=5) as ex:  # joins the running Ray, does not stop it
        assert ex.parallelism == 2
    assert "holds 2 workers" in caplog.text
    with pytest.raises(ConfigError, match=r"cluster has 2 CPUs.*cpus_per_worker=4"):
        _ = get_executor("ray", cpus_per_worker=4).parallelism
    assert ray.is_initialized()
