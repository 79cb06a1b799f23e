"""Incremental index updates: the same results as a rebuild, removed rows never found, a
kill -9 mid-update leaves the old index whole, a server swaps the update in under load."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from embedpipe.errors import ConfigError
from embedpipe.index import SimilarityIndex, build_index
from embedpipe.index.update import update_index
from embedpipe.store import StoreWriter

from .conftest import FAKE_BACKBONE, write_store

DIM = 32


def _write(path: Path, X: np.ndarray, ids, labels, classes, texts) -> Path:
    """A store whose content hashes hash each row's text (as an encode hashes its item)."""
    w = StoreWriter.create(
        path,
        dim=DIM,
        fingerprint="fp-grown",
        backbone=FAKE_BACKBONE,
        classes=classes,
        overwrite=True,
    )
    for s in range(0, len(X), 1024):
        e = min(len(X), s + 1024)
        w.append(
            X[s:e],
            list(ids[s:e]),
            [hashlib.blake2b(t.encode(), digest_size=16).digest() for t in texts[s:e]],
            labels[s:e],
            contents=list(texts[s:e]),
        )
    w.finalize()
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory):
    """A store of 3,000 rows, and its next version: 300 rows gone, 2 rows whose content
    changed (same id, new text, vector and hash), 900 new rows."""
    X, y = make_blobs(4000, n_features=DIM, centers=25, cluster_std=1.5, random_state=7)
    X = X.astype(np.float32)
    ids = np.array([f"r{i:05d}" for i in range(4000)])
    texts = np.array([f"text of {i}" for i in ids], dtype=object)
    d = tmp_path_factory.mktemp("grown")
    classes = [f"c{i}" for i in range(25)]
    v1 = np.arange(3000)
    _write(d / "v1.h5", X[v1], ids[v1], y[v1], classes, texts[v1])
    gone = np.arange(100, 400)
    v2 = np.setdiff1d(np.arange(3900), gone)
    X2 = X.copy()
    changed = np.array([5, 6])
    X2[changed] = X[[3950, 3951]]
    texts2 = texts.copy()
    for c in changed:
        texts2[c] = f"changed text {c}"
    _write(d / "v2.h5", X2[v2], ids[v2], y[v2], classes, texts2[v2])
    return d / "v1.h5", d / "v2.h5", X, X2, ids, gone, changed, v2


@pytest.mark.parametrize("merge_at", [1.0, 0.0])
def test_update_equals_rebuild_and_never_returns_removed_rows(stores, tmp_path, merge_at):
    v1, v2, X, X2, ids, gone, changed, v2_rows = stores
    path = tmp_path / "flat.index"
    build_index(v1, "flat").save(path)
    inode = (path / "index.faiss").stat().st_ino
    updated, res = update_index(path, v2, merge_at=merge_at)
    # nothing added to FAISS: its file is hard-linked into the new folder, not rewritten
    assert ((path / "index.faiss").stat().st_ino == inode) == (merge_at == 1.0)
    assert (res.added, res.removed, res.kept) == (902, 302, 2698)
    assert (res.pending, res.merged) == ((902, 0) if merge_at == 1.0 else (0, 902))
    assert "added 902, removed 302" in res.summary() and "a rebuild would take ~" in res.summary()
    rebuilt = build_index(v2, "flat")
    loaded = SimilarityIndex.load(path)
    assert len(loaded) == len(rebuilt) == len(v2_rows)
    rng = np.random.default_rng(0)
    # queries: the removed rows' own vectors, the changed rows' old vectors, random others
    Q = np.concatenate([X[gone[:20]], X[changed], X[rng.choice(4000, 30)]]) + rng.normal(
        0, 0.1, (52, DIM)
    ).astype(np.float32)
    removed_ids = set(ids[gone].tolist())
    for idx in (updated, loaded):
        a = idx.search(Q, 10)
        b = rebuilt.search(Q, 10)
        assert [[h.id for h in q] for q in a] == [[h.id for h in q] for q in b]
        np.testing.assert_allclose(
            [[h.score for h in q] for q in a],
            [[h.score for h in q] for q in b],
            rtol=1e-5,
            atol=1e-5,
        )
        assert not removed_ids & {h.id for q in a for h in q}
        assert [[h.content for h in q] for q in a] == [[h.content for h in q] for q in b]
        # changed rows are found at their new vectors
        hit = idx.search(X2[changed[0]], 1)[0][0]
        assert hit.id == "r00005" and hit.content == "changed text 5"
        # filters see the new rows and never the removed ones
        got = idx.search(Q, 10, where="label == 'c3'")
        assert all(h.label == "c3" for q in got for h in q)
        with pytest.raises(KeyError):
            idx.search_ids([ids[gone[0]]], 3)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_update_of_approximate_kinds_checks_recall(stores, tmp_path, kind):
    v1, v2, X, X2, ids, gone, changed, v2_rows = stores
    path = tmp_path / f"{kind}.index"
    build_index(v1, kind, target_recall=0.95, n_tune_queries=300).save(path)
    updated, res = update_index(path, v2, merge_at=0.0)
    assert res.merged == 902 and res.recall is not None
    assert res.recall["recall_low"] >= 0.95 or res.retuned != "no"
    loaded = SimilarityIndex.load(path)
    assert loaded.meta.update["added"] == 902 and loaded.n_removed == 300 + 2
    Q = X[gone[:50]]
    found = {h.id for q in loaded.search(Q, 10) for h in q}
    assert not found & set(ids[gone].tolist())
    # a second update with nothing new: nothing to do, nothing measured
    _, res2 = update_index(path, v2)
    assert (res2.added, res2.removed, res2.merged, res2.retuned) == (0, 0, 0, "no")


def test_update_refuses_another_backbone_and_cli_prints_one_line(stores, tmp_path, capsys):
    v1, v2, X, *_ = stores
    path = tmp_path / "c.index"
    build_index(v1, "flat").save(path)
    other = write_store(tmp_path / "other.h5", X[:50], fingerprint="another-fp")
    with pytest.raises(ConfigError, match="overwrite"):
        update_index(path, other)
    from embedpipe.cli import main

    try:
        main(["index", str(v2), "--out", str(path), "-q"])
    except SystemExit as e:
        assert not e.code
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "added 902, removed 302" in out and "re-tuned: no" in out


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time, faiss
    from embedpipe.index import persist
    from embedpipe.index.update import update_index
    real = faiss.write_index
    def slow(index, path):
        real(index, path)
        print("WRITING", flush=True)
        time.sleep(60)
    persist.faiss.write_index = slow
    update_index(sys.argv[1], sys.argv[2])
    """
)


def test_kill_9_during_an_update_leaves_the_old_index_usable(stores, tmp_path):
    v1, v2, X, *_ = stores
    path = tmp_path / "k.index"
    build_index(v1, "hnsw", target_recall=0.9, n_tune_queries=200).save(path)
    before = SimilarityIndex.load(path).search(X[:5], 5)
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(path), str(v2)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "WRITING"  # the new folder is half written
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    old = SimilarityIndex.load(path)
    assert len(old) == 3000
    assert [[h.id for h in q] for q in old.search(X[:5], 5)] == [[h.id for h in q] for q in before]
    # the next update cleans the dead one's leftovers and succeeds
    _, res = update_index(path, v2)
    assert res.added == 902 and len(SimilarityIndex.load(path)) == 3600
    assert not list(tmp_path.glob(".k.index.tmp-*"))


def test_server_answers_every_request_while_an_update_is_swapped_in(stores, tmp_path):
    pytest.importorskip("fastapi", reason="the server extra is not installed")
    import json
    import urllib.request

    from embedpipe.index.server import create_app

    from ._http import running_server

    v1, v2, X, *_ = stores
    path = tmp_path / "s.index"
    build_index(v1, "ivf", target_recall=0.9, n_tune_queries=200).save(path)
    app = create_app(SimilarityIndex.load(path))
    statuses: list[int] = []
    sizes: set[int] = set()
    stop = threading.Event()
    with running_server(app) as url:

        def load() -> None:
            body = json.dumps({"vector": X[7].tolist(), "k": 5}).encode()
            deadline = time.monotonic() + 60
            while not stop.is_set() and len(statuses) < 400 and time.monotonic() < deadline:
                req = urllib.request.Request(
                    url + "/search", data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(req, timeout=30) as r:
                    statuses.append(r.status)
                    json.loads(r.read())
                with urllib.request.urlopen(url + "/health", timeout=30) as r:
                    sizes.add(json.loads(r.read())["n"])

        workers = [threading.Thread(target=load) for _ in range(2)]
        for w in workers:
            w.start()
        time.sleep(0.5)
        update_index(path, v2, merge_at=0.0)
        time.sleep(1.0)
        stop.set()
        for w in workers:
            w.join(timeout=60)
        with urllib.request.urlopen(url + "/search?id=r03850&k=3", timeout=30) as r:
            assert r.status == 200  # a row added by the update is served
        with urllib.request.urlopen(url + "/health", timeout=30) as r:
            assert json.loads(r.read())["n"] == 3600
    assert statuses and all(s == 200 for s in statuses)
    assert sizes == {3000, 3600}
