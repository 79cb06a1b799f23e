"""Pipelines with an executor: sharded encode stages, index adds on the executor, one cache.

The text project of conftest.py (word vectors over Rotten Tomatoes snippets) keeps encodes to
milliseconds; a single test runs the same pipeline on a real local Ray (2 CPUs).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import embedpipe.executors as executors
from embedpipe.encoding import encode, encode_sharded
from embedpipe.errors import ConfigError, ItemError
from embedpipe.index import SimilarityIndex
from embedpipe.pipeline import Cache, Pipeline
from embedpipe.store import FeatureStore
from embedpipe.store.shards import is_sharded, read_shard_table, shards_dir

from .conftest import edit_yaml, run, write_csv

SHARDED = {"enc_train": 3, "enc_test": 2}


def shard(data: dict[str, Any], executor: Any = "local") -> None:
    """Give the pipeline an executor and split its encode stages into shards."""
    if executor is not None:
        data["executor"] = executor
    for name, n in SHARDED.items():
        data["stages"][name]["params"].update(n_shards=n, batch_size=32)


def rows_by_id(path: Path) -> dict[str, tuple[int, np.ndarray]]:
    with FeatureStore(path) as fs:
        fs.verify()
        feats, labels = fs.features, fs.labels
        return {i: (int(labels[r]), feats[r]) for r, i in enumerate(fs.ids.tolist())}


def assert_same_rows(a: Path, b: Path) -> None:
    x, y = rows_by_id(a), rows_by_id(b)
    assert x.keys() == y.keys() and len(x) > 0
    for item_id, (label, feats) in x.items():
        assert y[item_id][0] == label
        np.testing.assert_array_equal(y[item_id][1], feats)


def assert_same_search(a: Path, b: Path) -> None:
    ia, ib = SimilarityIndex.load(a / "index"), SimilarityIndex.load(b / "index")
    assert len(ia) == len(ib) and ia.meta.factory == ib.meta.factory
    ids = ia.ids[:20].tolist()
    ra, rb = ia.search_ids(ids, k=5), ib.search_ids(ids, k=5)
    assert [[n.id for n in q] for q in ra] == [[n.id for n in q] for q in rb]
    np.testing.assert_allclose(
        [[n.score for n in q] for q in ra], [[n.score for n in q] for q in rb], atol=1e-5
    )


class Spy:
    """Records every executor the runner creates (real executors, their close() counted)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.made: list[Any] = []
        self.closed = 0
        real = executors.get_executor

        def get_executor(*a: Any, **k: Any) -> Any:
            ex = real(*a, **k)
            close = ex.close

            def counted() -> None:
                self.closed += 1
                close()

            ex.close = counted
            self.made.append(ex)
            return ex

        monkeypatch.setattr(executors, "get_executor", get_executor)


@pytest.fixture
def plain_run(text_project: Path):
    """The pipeline run without an executor, in its own cache."""
    return run(text_project, cache=text_project / "plain-cache")


def test_local_executor_with_shards_equals_plain_run_and_shares_its_cache(
    text_project: Path, plain_run, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    edit_yaml(text_project / "pipeline.yaml", shard)
    sharded = run(text_project, cache=text_project / "cache")
    assert sharded.executed == ["enc_train", "enc_test", "idx"]
    assert len(spy.made) == 1 and spy.closed == 1  # one executor for the run, closed at its end
    # executor, n_shards and shard_size are not in any key: the features are the same
    assert {n: s.key for n, s in sharded.stages.items()} == {
        n: s.key for n, s in plain_run.stages.items()
    }
    out = sharded["enc_train"].outputs
    assert (out["sharded"], out["executor"], out["n_shards"], out["n_encoded"]) == (
        True,
        "local",
        3,
        300,
    )
    assert sharded["idx"].outputs["added_on"] == "local"
    master = sharded["enc_train"].path / "features.h5"
    assert is_sharded(master) and len(read_shard_table(master)) == 3
    assert all(not Path(e.file).is_absolute() for e in read_shard_table(master))
    for name in SHARDED:
        assert_same_rows(plain_run[name].path / "features.h5", sharded[name].path / "features.h5")
    assert_same_search(plain_run["idx"].path, sharded["idx"].path)
    # The entry was built in tmp/ and renamed into the cache; moving the whole cache keeps
    # the master's relative shard paths working too.
    moved = text_project / "moved-cache"
    shutil.move(text_project / "cache", moved)
    assert_same_rows(
        plain_run["enc_train"].path / "features.h5",
        moved / "encode" / sharded["enc_train"].key / "features.h5",
    )
    # The sharded pipeline hits the plain run's cache: nothing runs, no executor starts.
    again = run(text_project, cache=text_project / "plain-cache")
    assert again.hits == ["enc_train", "enc_test", "idx"] and len(spy.made) == 1
    assert json.loads(again.manifest_path.read_text())["executor"] == {"name": "local"}


def test_item_reuse_finds_sharded_stores(
    text_project: Path, snippets: list[tuple[str, str, str]]
) -> None:
    edit_yaml(text_project / "pipeline.yaml", shard)
    run(text_project, only=["enc_train"])
    # The dataset grows: the new (plain) encode copies the 300 rows from the sharded entry...
    write_csv(text_project / "train.csv", snippets[:300] + snippets[400:460])
    edit_yaml(text_project / "pipeline.yaml", lambda d: d.pop("executor"))
    edit_yaml(
        text_project / "pipeline.yaml",
        lambda d: [d["stages"]["enc_train"]["params"].pop(k) for k in ("n_shards", "batch_size")],
    )
    grown = run(text_project, only=["enc_train"])["enc_train"].outputs
    assert (grown["n_reused"], grown["n_encoded"]) == (300, 60)
    # ...and a sharded encode copies rows from both kinds of entries.
    write_csv(text_project / "train.csv", snippets[:300] + snippets[400:460] + snippets[300:310])
    edit_yaml(text_project / "pipeline.yaml", shard)
    again = run(text_project, only=["enc_train"])["enc_train"].outputs
    assert (again["n_reused"], again["n_encoded"], again["sharded"]) == (360, 10, True)


def test_run_resumes_a_crashed_encode_of_the_other_layout(text_project: Path) -> None:
    """A sharded run crashed before its commit, then a plain run (and the other way round):
    the rows already encoded are copied, and the entry holds one layout only."""
    p = Pipeline.from_file(text_project / "pipeline.yaml")
    key = p.key("enc_train").key
    cache = Cache(text_project / "cache")
    tmp = cache.tmp_dir("encode", key)
    source = p.datasets["train"].source
    from embedpipe.backbones import load_backbone

    vectors = str(text_project / "vectors" / "v.txt")
    enc = load_backbone(f"word-vectors:{vectors}", normalize=True)
    opts = {"batch_size": 32, "num_workers": 0, "progress": False}
    encode_sharded(source, enc, tmp / "features.h5", n_shards=2, **opts)
    plain = run(text_project, only=["enc_train"])["enc_train"]
    assert (plain.outputs["n_reused"], plain.outputs["n_encoded"]) == (300, 0)
    assert not is_sharded(plain.path / "features.h5")
    assert not shards_dir(plain.path / "features.h5").exists()
    expected = rows_by_id(plain.path / "features.h5")

    tmp.mkdir(parents=True)
    encode(source, enc, tmp / "features.h5", **opts)
    edit_yaml(text_project / "pipeline.yaml", shard)
    sharded = run(text_project, only=["enc_train"], force=["enc_train"])["enc_train"]
    assert (sharded.outputs["n_reused"], sharded.outputs["n_encoded"]) == (300, 0)
    assert sorted(p.name for p in sharded.path.iterdir()) == [
        "features.h5",
        "features.shards",
        "meta.json",
    ]
    got = rows_by_id(sharded.path / "features.h5")
    assert got.keys() == expected.keys()
    for item_id, (label, feats) in expected.items():
        assert got[item_id][0] == label
        np.testing.assert_array_equal(got[item_id][1], feats)


def test_executor_is_closed_when_a_stage_fails(
    text_project: Path, snippets: list[tuple[str, str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    write_csv(text_project / "test.csv", [*snippets[300:350], ("broken", "", "fresh")])
    edit_yaml(text_project / "pipeline.yaml", shard)
    with pytest.raises(ItemError, match="broken"):
        run(text_project)
    assert len(spy.made) == 1 and spy.closed == 1


@pytest.mark.parametrize(
    ("executor", "expected"),
    [
        ({"name": "spark"}, r"key 'executor'.*name.*'local' or 'ray'"),
        (
            {"name": "ray", "num_workers": 0},
            r"key 'executor'.*num_workers.*greater than or equal to 1",
        ),
        ({"name": "ray", "gpus": 1}, r"key 'executor'.*gpus.*Accepted keys: name, address"),
        ({"num_workers": 2}, r"key 'executor'.*does not say which executor; add name"),
        (3, r"key 'executor': expected an executor name \(local, ray, none\)"),
    ],
)
def test_bad_executor_settings_name_the_key_and_the_line(
    text_project: Path, executor: Any, expected: str
) -> None:
    edit_yaml(text_project / "pipeline.yaml", lambda d: d.update(executor=executor))
    with pytest.raises(ConfigError, match=expected) as info:
        run(text_project)
    assert "pipeline.yaml line " in str(info.value)
    assert not (text_project / "cache" / "encode").exists()  # nothing ran


def test_bad_shard_params_and_overrides(text_project: Path) -> None:
    edit_yaml(
        text_project / "pipeline.yaml",
        lambda d: d["stages"]["enc_train"]["params"].update(n_shards=2, shard_size=64),
    )
    with pytest.raises(ConfigError, match=r"stage 'enc_train'.*'shard_size'.*not both"):
        Pipeline.from_file(text_project / "pipeline.yaml")
    edit_yaml(
        text_project / "pipeline.yaml",
        lambda d: [d["stages"]["enc_train"]["params"].pop(k) for k in ("n_shards", "shard_size")],
    )
    with pytest.raises(ConfigError, match=r"executor override: .*name"):
        run(text_project, executor={"name": "dask"})


def test_overrides_merge_over_the_file() -> None:
    p = Pipeline("p", executor={"name": "ray", "num_workers": 4, "gpus_per_worker": 1})
    p.stage("e", "encode", dataset="d", backbone="minilm")
    p.dataset("d", "builtin:digits")
    cfg = p.executor_config({"address": "auto", "num_workers": 2})
    assert (cfg.name, cfg.address, cfg.num_workers, cfg.gpus_per_worker) == ("ray", "auto", 2, 1)
    assert p.executor_config("none") is None
    assert p.executor_config("local").name == "local"
    bare = Pipeline("q")
    bare.stage("e", "encode", dataset="d", backbone="minilm")
    bare.dataset("d", "builtin:digits")
    assert bare.executor_config() is None
    assert bare.executor_config({"address": "auto"}).name == "ray"  # only Ray has addresses


@pytest.fixture(scope="module")
def ray_session():
    """A 2-CPU local Ray for this module (joined if an earlier test module started one)."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            configure_logging=False,
            object_store_memory=100 * 2**20,
        )
    yield ray
    if started:
        ray.shutdown()


def test_ray_pipeline_equals_local_run(text_project: Path, ray_session) -> None:
    ray = ray_session
    edit_yaml(text_project / "pipeline.yaml", shard)
    local = run(text_project, cache=text_project / "local-cache")
    on_ray = run(
        text_project,
        executor={"name": "ray", "num_workers": 2, "cpus_per_worker": 1},
    )
    assert on_ray.executed == ["enc_train", "enc_test", "idx"]
    assert on_ray["enc_train"].outputs["executor"] == "ray"
    assert on_ray["idx"].outputs["added_on"] == "ray"
    for name in SHARDED:
        assert_same_rows(local[name].path / "features.h5", on_ray[name].path / "features.h5")
    assert_same_search(local["idx"].path, on_ray["idx"].path)
    assert ray.is_initialized()  # the run joined this Ray and left it running
