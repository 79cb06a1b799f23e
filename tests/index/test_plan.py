"""Choosing the index: kinds, factory strings, auto by size and memory budget."""

from __future__ import annotations

import faiss
import pytest

from embedpipe.errors import ConfigError
from embedpipe.index.kinds import INDEX_TYPES, pq_sizes
from embedpipe.index.plan import INDEX_KINDS, n_lists, parse_bytes, plan_index


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4GB", 4_000_000_000),
        ("512MiB", 512 * 2**20),
        ("2g", 2_000_000_000),
        ("1.5 GiB", int(1.5 * 2**30)),
        (1000, 1000),
        (None, None),
    ],
)
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["lots", "-3GB", "4 parsecs", 0])
def test_parse_bytes_rejects_nonsense(bad):
    with pytest.raises(ConfigError, match="memory budget"):
        parse_bytes(bad)


def test_n_lists_grows_like_sqrt_n_and_keeps_39_points_per_list():
    assert n_lists(20_000) == 256
    assert n_lists(1_000_000) == 2048
    for n in (50, 1000, 5000, 123_456):
        assert n // n_lists(n) >= 39


def test_auto_small_data_is_exact():
    p = plan_index(5_000, 384, memory_budget="8GB")
    assert (p.kind, p.factory, p.n_train) == ("flat", "Flat", 0)


def test_auto_target_recall_one_is_exact():
    assert plan_index(1_000_000, 384, memory_budget="8GB", target_recall=1.0).kind == "flat"


def test_auto_follows_the_memory_budget():
    n, d = 1_000_000, 384
    roomy = plan_index(n, d, memory_budget="8GB")
    assert roomy.factory == "IVF2048,Flat" and roomy.bytes_estimate <= 8e9
    assert roomy.n_train == 50 * 2048
    tight = plan_index(n, d, memory_budget="1GB")
    assert tight.factory == "IVF2048,SQ8" and tight.bytes_estimate <= 1e9
    tighter = plan_index(n, d, memory_budget="80MB")
    assert tighter.kind == "ivfpq" and tighter.bytes_estimate <= 80e6
    m = int(tighter.factory.split("PQ")[1].split("x")[0])
    assert d % m == 0
    # It is the largest PQ that fits: the next larger code size would not.
    bigger = min(s for s in pq_sizes(d) if s > m)
    assert INDEX_TYPES.get("ivfpq").estimate(n, d, nlist=2048, m=bigger) > 80e6
    assert "budget" in tighter.reason
    with pytest.raises(ConfigError, match="too small"):
        plan_index(n, d, memory_budget="5MB")


@pytest.mark.parametrize("kind", [k for k in INDEX_KINDS if k != "auto"])
def test_named_kinds_are_valid_factories(kind):
    p = plan_index(100_000, 64, kind)
    index = faiss.index_factory(64, p.factory)
    assert p.kind == kind
    assert (p.n_train > 0) == (not index.is_trained)


def test_factory_string_is_accepted_and_sized_for_training():
    p = plan_index(100_000, 64, "OPQ16,IVF256,PQ16")
    assert p.kind == "factory" and p.factory == "OPQ16,IVF256,PQ16"
    assert p.n_train >= 39 * 256


def test_bad_kind_lists_the_choices():
    with pytest.raises(ConfigError) as e:
        plan_index(1000, 64, "kdtree")
    msg = str(e.value)
    assert "'kdtree'" in msg and "auto" in msg and "hnsw" in msg and "IVF1024,Flat" in msg


def test_empty_data_is_an_error():
    with pytest.raises(ConfigError, match="0 vectors"):
        plan_index(0, 64)
