"""Executors without Ray: config, shard plans, local sharded encode, resume, FAISS adds."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from embedpipe.backbones import load_backbone
from embedpipe.data import ArraySource, BaseSource, open_source, subset
from embedpipe.encoding import BackboneFactory, encode, encode_sharded, plan_shards, shard_bounds
from embedpipe.errors import ConfigError, FingerprintMismatchError, ItemError, StoreError
from embedpipe.executors import ExecutorConfig, LocalExecutor, get_executor
from embedpipe.executors.base import ErrorBox
from embedpipe.index.parallel_add import add_shards_to_index
from embedpipe.store import FeatureStore, StoreWriter
from embedpipe.store.shards import is_sharded, merge_shards, shard_paths

N, BATCH = 80, 16
ENCODE = {"batch_size": BATCH, "precision": "fp32", "progress": False, "num_workers": 0}


@pytest.fixture(scope="module")
def source():
    return open_source(f"builtin:digits?limit={N}")


@pytest.fixture(scope="module")
def encoder():
    return load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, source, encoder) -> Path:
    out = tmp_path_factory.mktemp("ref") / "local.h5"
    encode(source, encoder, out, **ENCODE)
    return out


def assert_same_store(a: Path, b: Path) -> None:
    with FeatureStore(a) as x, FeatureStore(b) as y:
        assert y.ids.tolist() == x.ids.tolist()
        np.testing.assert_array_equal(y.labels, x.labels)
        np.testing.assert_array_equal(y.content_hashes, x.content_hashes)
        np.testing.assert_array_equal(y.features, x.features)
        assert (y.fingerprint, y.dataset_digest, y.classes) == (
            x.fingerprint,
            x.dataset_digest,
            x.classes,
        )
        y.verify()


# ---- configuration ----------------------------------------------------------------------
def test_executor_config_from_names_dicts_and_flags():
    assert ExecutorConfig.parse(None).name == "local"
    cfg = ExecutorConfig.parse(
        {"name": "ray", "num_workers": 2, "gpus_per_worker": 1},
        address="auto",
        cpus_per_worker=None,
    )
    assert (cfg.name, cfg.num_workers, cfg.gpus_per_worker, cfg.address, cfg.cpus_per_worker) == (
        "ray",
        2,
        1.0,
        "auto",
        1.0,
    )
    assert ExecutorConfig.parse(cfg, num_workers=4).num_workers == 4
    with pytest.raises(ConfigError, match=r"name.*local, ray"):
        ExecutorConfig.parse("spark")
    with pytest.raises(ConfigError, match=r"workers.*Accepted keys: name, address, num_workers"):
        ExecutorConfig.parse({"name": "ray", "workers": 2})
    with pytest.raises(ConfigError, match="num_workers"):
        get_executor("ray", num_workers=0)
    with get_executor() as ex:
        assert isinstance(ex, LocalExecutor) and ex.parallelism == 1


class TwoArgError(Exception):
    """A third-party style exception whose __init__ does not take its message."""

    def __init__(self, item: str, why: str) -> None:
        super().__init__(f"{item}: {why}")
        self.item = item


def test_error_box_rebuilds_exceptions_pickle_cannot():
    err = TwoArgError("img/7.png", "truncated file")
    with pytest.raises(TypeError):
        pickle.loads(pickle.dumps(err))  # why the box exists
    back = pickle.loads(pickle.dumps(ErrorBox.of(err))).rebuild()
    assert type(back) is TwoArgError and back.item == "img/7.png" and str(back) == str(err)
    assert "in the worker" in str(back.__cause__)
    item = pickle.loads(pickle.dumps(ErrorBox.of(ItemError("img/8.png", "bad")))).rebuild()
    assert type(item) is ItemError and item.item_id == "img/8.png"


# ---- shard plans ------------------------------------------------------------------------
def test_shard_bounds_align_to_batches_and_cover_every_item():
    assert shard_bounds(100, n_shards=3, align=16) == [(0, 48), (48, 80), (80, 100)]
    assert shard_bounds(100, shard_size=20, align=16) == [(0, 32), (32, 64), (64, 96), (96, 100)]
    assert shard_bounds(5, n_shards=10) == [(k, k + 1) for k in range(5)]
    assert shard_bounds(0, n_shards=4) == [(0, 0)]
    for n, k, a in [(1000, 7, 64), (999, 3, 1), (65, 2, 64)]:
        b = shard_bounds(n, n_shards=k, align=a)
        assert (
            b[0][0] == 0
            and b[-1][1] == n
            and all(x[1] == y[0] for x, y in zip(b, b[1:], strict=False))
        )
        assert all(s % a == 0 for s, _ in b)
    with pytest.raises(ConfigError, match="not both"):
        shard_bounds(10, n_shards=2, shard_size=5)


def test_shard_keys_are_deterministic_and_follow_content():
    ids = [f"i{k}" for k in range(40)]
    hashes = [bytes([k]) * 16 for k in range(40)]
    labels = np.arange(40) % 3
    kw = {"fingerprint": "fp", "n_shards": 4}
    a = plan_shards(ids, hashes, labels, ["a", "b", "c"], **kw)
    assert [s.key for s in a] == [
        s.key for s in plan_shards(ids, hashes, labels, ["a", "b", "c"], **kw)
    ]
    assert len({s.key for s in a}) == 4
    changed = list(hashes)
    changed[25] = b"\xff" * 16  # item 25 is in shard 2
    b = plan_shards(ids, changed, labels, ["a", "b", "c"], **kw)
    assert [x.key == y.key for x, y in zip(a, b, strict=True)] == [True, True, False, True]
    for other in ({"fingerprint": "fp2"}, {"dtype": "float16"}):
        c = plan_shards(ids, hashes, labels, ["a", "b", "c"], **{**kw, **other})
        assert not {s.key for s in a} & {s.key for s in c}


# ---- local sharded encode -----------------------------------------------------------------
def test_local_sharded_encode_equals_plain_encode(tmp_path, source, encoder, reference):
    out = tmp_path / "digits.h5"
    res = encode_sharded(source, encoder, out, n_shards=3, **ENCODE)
    assert (res.n_shards, res.n_encoded, res.n_shards_cached, res.executor) == (3, N, 0, "local")
    assert [o.n_items for o in res.shards] == [32, 32, 16]
    assert is_sharded(out) and len(shard_paths(out)) == 3
    assert all(p.parent == tmp_path / "digits.shards" for p in shard_paths(out))
    assert_same_store(reference, out)
    with FeatureStore(out) as fs:
        extra = fs.provenance["extra"]
        assert (
            extra["n_shards"] == 3
            and extra["executor"] == "local"
            and extra["source"]["n_items"] == N
        )
        np.testing.assert_array_equal(fs.read([79, 0, 40]), fs.features[[79, 0, 40]])
    # The master and its folder move together (relative paths), and a re-run reuses all.
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    (tmp_path / "digits.h5").rename(moved / "digits.h5")
    (tmp_path / "digits.shards").rename(moved / "digits.shards")
    assert_same_store(reference, moved / "digits.h5")
    again = encode_sharded(
        source, encoder.spec.to_dict(), moved / "digits.h5", n_shards=3, **ENCODE
    )
    assert (again.n_shards_cached, again.n_encoded, again.n_resumed) == (3, 0, N)


class FailsOnce(BaseSource):
    """``source``'s items; loading item ``at`` fails the first time only (``marker``)."""

    def __init__(self, inner: Any, at: int, marker: Path) -> None:
        self.inner, self.at, self.marker = inner, at, str(marker)
        self.modality, self.ids, self.labels, self.classes = (
            inner.modality,
            inner.ids,
            inner.labels,
            inner.classes,
        )

    def load(self, i: int) -> Any:
        if i == self.at and not Path(self.marker).exists():
            Path(self.marker).touch()
            raise ItemError(self.ids[i], "read error: device not ready")
        return self.inner.load(i)

    def content_hash(self, i: int) -> bytes:
        return self.inner.content_hash(i)

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()


def test_rerun_after_a_crash_redoes_only_incomplete_shards(tmp_path, source, encoder, reference):
    out = tmp_path / "digits.h5"
    flaky = FailsOnce(source, at=52, marker=tmp_path / "failed")  # shard 1 (32..63), 2nd batch
    with pytest.raises(ItemError, match="device not ready"):
        encode_sharded(flaky, encoder, out, n_shards=3, **ENCODE)
    assert not out.exists()  # no master until every shard is complete
    sdir = tmp_path / "digits.shards"
    done = sorted(sdir.glob("*.h5"))
    partial = sorted(sdir.glob("*.h5.partial"))
    assert len(done) == 1 and len(partial) == 1
    stamp = (done[0].stat().st_ino, done[0].stat().st_mtime_ns)
    res = encode_sharded(flaky, encoder, out, n_shards=3, **ENCODE)
    assert res.n_shards_cached == 1 and [o.cached for o in res.shards] == [True, False, False]
    assert (res.shards[1].n_resumed, res.shards[1].n_encoded) == (16, 16)  # partial shard resumed
    assert (done[0].stat().st_ino, done[0].stat().st_mtime_ns) == stamp  # never rewritten
    assert_same_store(reference, out)
    assert not list(sdir.glob("*.partial"))


def test_grown_dataset_encodes_only_new_items(tmp_path, source, encoder, reference):
    out = tmp_path / "digits.h5"
    first = encode_sharded(subset(source, range(56)), encoder, out, shard_size=32, **ENCODE)
    assert [o.n_items for o in first.shards] == [32, 24]
    old_tail = shard_paths(out)[1]
    res = encode_sharded(source, encoder, out, shard_size=32, **ENCODE)
    assert [o.cached for o in res.shards] == [True, False, False]
    # Shard 1 (32..63) copies the 24 rows of the old tail shard and encodes 8 new items.
    assert (res.shards[1].n_reused, res.shards[1].n_encoded, res.n_encoded) == (24, 8, 24)
    assert not old_tail.exists()  # no longer used: removed after the merge
    with FeatureStore(out) as a, FeatureStore(reference) as b:
        order = b.index_of(a.ids.tolist())
        np.testing.assert_array_equal(a.features, b.features[order])


def test_refuses_other_stores_and_backbones_unless_overwrite(tmp_path, source, encoder):
    small = subset(source, range(16))
    plain = tmp_path / "plain.h5"
    encode(small, encoder, plain, **ENCODE)
    with pytest.raises(StoreError, match="single-file store"):
        encode_sharded(small, encoder, plain, **ENCODE)
    out = tmp_path / "s.h5"
    encode_sharded(small, encoder, out, **ENCODE)
    other = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32, seed=1)
    with pytest.raises(FingerprintMismatchError, match="overwrite=True"):
        encode_sharded(small, other, out, **ENCODE)
    res = encode_sharded(small, other, out, overwrite=True, **ENCODE)
    with FeatureStore(out) as fs:
        assert fs.fingerprint == other.fingerprint == res.fingerprint and len(fs) == 16
    assert len(list((tmp_path / "s.shards").iterdir())) == 1


class Broken(FailsOnce):
    def load(self, i: int) -> Any:
        if i == self.at:
            raise ItemError(self.ids[i], "not an image")
        return self.inner.load(i)


def test_skipped_items_are_recorded_and_raise_later_under_raise(tmp_path, source, encoder):
    bad = Broken(subset(source, range(32)), at=20, marker=tmp_path / "unused")
    out = tmp_path / "s.h5"
    res = encode_sharded(bad, encoder, out, n_shards=2, on_error="skip", **ENCODE)
    assert res.n_skipped == 1
    with FeatureStore(out) as fs:
        assert len(fs) == 31 and fs.errors == [(bad.ids[20], "not an image")]
    with pytest.raises(ItemError, match="not an image"):
        encode_sharded(bad, encoder, out, n_shards=2, **ENCODE)


def test_factory_ships_a_spec_not_a_model(encoder):
    factory, _ = BackboneFactory.resolve(encoder)
    blob = pickle.dumps(factory)
    assert len(blob) < 4096  # the spec, not 11M parameters
    rebuilt = pickle.loads(blob).build()
    assert rebuilt is not encoder and rebuilt.fingerprint == encoder.fingerprint
    assert factory.build() is encoder  # in-process: no second load
    tampered = BackboneFactory({**encoder.spec.to_dict(), "options": {"seed": 5}})
    with pytest.raises(FingerprintMismatchError):
        tampered.build()


def test_text_sources_shard_too(tmp_path):
    rng = np.random.default_rng(0)
    words = [f"w{k}" for k in range(50)]
    vec = tmp_path / "vectors.txt"
    vec.write_text(
        "".join(f"{w} " + " ".join(f"{v:.6f}" for v in rng.normal(size=8)) + "\n" for w in words)
    )
    texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 12)))) for _ in range(60)]
    src = ArraySource(texts, labels=[k % 2 for k in range(60)])
    enc = load_backbone(f"word-vectors:{vec}")
    encode(src, enc, tmp_path / "plain.h5", batch_size=8, progress=False)
    encode_sharded(src, enc, tmp_path / "sharded.h5", n_shards=4, batch_size=8, progress=False)
    with FeatureStore(tmp_path / "plain.h5") as a, FeatureStore(tmp_path / "sharded.h5") as b:
        # Text batches are sorted by length (per shard), so rows are compared by id.
        order = a.index_of(b.ids.tolist())
        assert sorted(b.ids.tolist()) == sorted(src.ids)
        np.testing.assert_allclose(b.features, a.features[order], rtol=1e-6, atol=1e-7)
        np.testing.assert_array_equal(b.labels, a.labels[order])


# ---- FAISS: parallel add + merge -----------------------------------------------------------
@pytest.fixture
def one_faiss_thread():
    """OpenMP spinning on a shared 2-core machine makes tiny trainings take seconds."""
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(before)


def _random_shards(root: Path, sizes: list[int], dim: int = 16) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(sum(sizes), dim)).astype(np.float32)
    paths, start = [], 0
    for k, n in enumerate(sizes):
        p = root / "m.shards" / f"s{k}.h5"
        w = StoreWriter.create(p, dim=dim, fingerprint="fp", backbone={"kind": "t", "name": "m"})
        w.append(
            x[start : start + n], [f"r{start + i}" for i in range(n)], np.zeros((n, 16), np.uint8)
        )
        w.finalize()
        paths.append(p)
        start += n
    return merge_shards(root / "m.h5", paths), x


@pytest.mark.parametrize(
    "desc,normalize",
    [
        ("Flat", False),
        ("IVF8,Flat", False),
        ("IVF8,PQ4x4", True),
        ("IDMap,Flat", False),
        ("HNSW8", False),
    ],
)
def test_parallel_add_equals_sequential_add(tmp_path, desc, normalize, one_faiss_thread):
    master, x = _random_shards(tmp_path, [300, 0, 250, 450])
    empty = faiss.index_factory(
        16, desc, faiss.METRIC_INNER_PRODUCT if normalize else faiss.METRIC_L2
    )
    if not empty.is_trained:
        empty.train(x[:500])
    seq = faiss.deserialize_index(faiss.serialize_index(empty))
    xs = x.copy()
    if normalize:
        faiss.normalize_L2(xs)
    if desc.startswith("IDMap"):
        seq.add_with_ids(xs, np.arange(len(xs)))
    else:
        seq.add(xs)
    merged = add_shards_to_index(
        faiss.serialize_index(empty), master, executor="local", normalize=normalize, batch_size=100
    )
    assert merged.ntotal == len(x)
    if desc.startswith("HNSW"):
        # HNSW cannot merge: it is filled on the driver, batch by batch, and its graph depends
        # on the batches; the ids must still be the rows.
        assert (merged.search(xs, 1)[1][:, 0] == np.arange(len(xs))).mean() > 0.95
        return
    assert bytes(faiss.serialize_index(merged)) == bytes(faiss.serialize_index(seq))
    np.testing.assert_array_equal(merged.search(xs[:20], 5)[1], seq.search(xs[:20], 5)[1])


def test_parallel_add_refuses_untrained_or_full_indexes(tmp_path):
    master, x = _random_shards(tmp_path, [50, 50])
    with pytest.raises(ConfigError, match="not trained"):
        add_shards_to_index(faiss.index_factory(16, "IVF4,Flat"), master)
    full = faiss.IndexFlatL2(16)
    full.add(x[:3])
    with pytest.raises(ConfigError, match="already holds 3 vectors"):
        add_shards_to_index(full, master)
