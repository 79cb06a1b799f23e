"""Readers check what they read (issue 22, item 4): a damaged block of features, a NaN row, a
damaged labels chunk and an unfinished store are each a one-line error for every reader
(train, evaluate, index, export), never data used silently; and exports are atomic (item 6)."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from embedpipe.cli import main
from embedpipe.errors import StoreError
from embedpipe.store import FeatureStore, StoreWriter, export
from embedpipe.store import format as fmt
from embedpipe.store.export import PARTIAL

N, DIM = 3000, 256  # 1,024 rows a block: three blocks


def _store(path: Path, finish: bool = True, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    w = StoreWriter.create(
        path,
        dim=DIM,
        fingerprint="fp",
        backbone={"name": "t"},
        classes=["a", "b"],
        extra={"source": {"n_items": N}},
    )
    for s in range(0, n, 500):
        k = min(n, s + 500) - s
        w.append(
            x[s : s + k] + (np.arange(s, s + k) % 2)[:, None],  # separable classes
            [f"id{i:05d}" for i in range(s, s + k)],
            [bytes(16)] * k,
            labels=(np.arange(s, s + k) % 2).tolist(),
        )
    if finish:
        w.finalize()
    else:
        w.close()
    with FeatureStore(path) as fs:
        return fs.features


def _flip(path: Path, name: str, row: int) -> None:
    """Flip one low bit inside the stored chunk holding ``row`` (the value stays finite)."""
    with h5py.File(path, "r") as f:
        ds = f[name]
        info = ds.id.get_chunk_info_by_coord((row,) + (0,) * (ds.ndim - 1))
        inner = (row % ds.chunks[0]) * int(np.prod(ds.shape[1:], dtype=np.int64))
        at = info.byte_offset + inner * ds.dtype.itemsize
    with open(path, "r+b") as fh:
        fh.seek(at)
        b = fh.read(1)
        fh.seek(at)
        fh.write(bytes([b[0] ^ 0x01]))


def _cli(args: list[str], capsys) -> tuple[int, str]:
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    err = capsys.readouterr().err
    return code, err


def _readers(store: Path, tmp: Path) -> dict[str, list[str]]:
    return {
        "train": ["train", "--store", str(store), "--out", str(tmp / "h.skops"), "-q"],
        "evaluate": ["evaluate", "--store", str(store), "--head", "nearest_centroid", "-q"],
        "index": ["index", str(store), "--out", str(tmp / "ix"), "--kind", "flat", "-q"],
        "export": ["export", str(store), "--to", "npy", "--out", str(tmp / "x-npy"), "-q"],
    }


def _one_line_error(code: int, err: str, *needles: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and len(lines) == 1, err
    for n in needles:
        assert n in lines[0], lines[0]


def test_a_flipped_byte_in_the_features_fails_every_reader(tmp_path, capsys) -> None:
    good = tmp_path / "s.h5"
    ref = _store(good)
    _flip(good, fmt.FEATURES, 1500)  # block 1: rows 1024..2047
    with FeatureStore(good) as fs:
        assert np.array_equal(fs.read(slice(0, 1000)), ref[:1000])  # other blocks read fine
        assert np.array_equal(fs.read([5, 2500, 7]), ref[[5, 2500, 7]])
        for read in (
            lambda: fs.features,
            lambda: fs.read(slice(1400, 1401)),
            lambda: fs.read([2999, 1500]),
            lambda: [b for b in fs.iter_batches(700)],
        ):
            with pytest.raises(StoreError, match=r"'features' is damaged in rows 1024\.\.2047"):
                read()
    for name, args in _readers(good, tmp_path).items():
        code, err = _cli(args, capsys)
        _one_line_error(code, err, "damaged in rows 1024..2047")
        assert name != "export" or not (tmp_path / "x-npy").exists()


def test_a_nan_row_is_an_error_naming_the_row(tmp_path, capsys) -> None:
    p = tmp_path / "s.h5"
    _store(p)
    with h5py.File(p, "r+") as f:  # NaN written with its CRC made to match: only NaN is wrong
        f[fmt.FEATURES][1234, 7] = np.nan
        fmt.write_feature_crcs(f)
    with FeatureStore(p) as fs, pytest.raises(StoreError, match=r"row 1234 \(id 'id01234'\)"):
        fs.read(slice(1000, 2000))
    for args in _readers(p, tmp_path).values():
        code, err = _cli(args, capsys)
        _one_line_error(code, err, "NaN or Inf", "row 1234")


def test_a_damaged_labels_chunk_is_one_line(tmp_path, capsys) -> None:
    p = tmp_path / "s.h5"
    _store(p)
    _flip(p, fmt.LABELS, 10)
    with FeatureStore(p) as fs, pytest.raises(StoreError, match=r"'labels' is damaged"):
        _ = fs.labels
    for name in ("train", "evaluate", "export"):
        code, err = _cli(_readers(p, tmp_path)[name], capsys)
        _one_line_error(code, err, "'labels' is damaged")


def test_one_rule_for_an_unfinished_store(tmp_path, capsys) -> None:
    p = tmp_path / "s.h5"
    _store(p, finish=False, n=1152)
    for args in _readers(p, tmp_path).values():
        code, err = _cli(args, capsys)
        _one_line_error(
            code, err, "holds 1,152 of 3,000 rows", "finish the encode", "--allow-incomplete"
        )
    code, err = _cli([*_readers(p, tmp_path)["export"], "--allow-incomplete"], capsys)
    assert code == 0, err
    assert np.load(tmp_path / "x-npy" / "features.npy").shape == (1152, DIM)


@pytest.mark.parametrize("to", ["csv", "npy", "parquet"])
def test_an_interrupted_export_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, to):
    p = tmp_path / "s.h5"
    _store(p)
    out = tmp_path / f"x.{to}"
    real = FeatureStore.iter_batches

    def dies(self, *a, **k):  # a kill arriving after the first batch was written
        it = real(self, *a, **k)
        yield next(it)
        raise KeyboardInterrupt

    monkeypatch.setattr(FeatureStore, "iter_batches", dies)
    with pytest.raises(KeyboardInterrupt):
        export(p, out, to, batch_size=500)
    assert not out.exists()
    assert not [q for q in tmp_path.iterdir() if q.name.startswith(".")]
    # A dead process's temporary export is cleared by the next export; the re-run succeeds
    # (no "already exists").
    dead = tmp_path / f".{out.name}.999999999{PARTIAL}"
    dead.write_text("partial")
    monkeypatch.undo()
    export(p, out, to, batch_size=500)
    assert out.exists() and not dead.exists()
    if to == "npy":
        assert np.load(out / "features.npy").shape == (N, DIM)
    os.chmod(out, 0o755)
