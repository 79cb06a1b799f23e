"""Heads saved in a format that loads without running code; pickles only when trusted."""

from __future__ import annotations

import os
import pickle
import threading
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits

from embedpipe.errors import ConfigError
from embedpipe.heads import TrainedHead, list_heads, load_head, make_head, train_head
from embedpipe.heads.persist import dump_estimator, load_estimator

from .conftest import make_store

FAST = {  # small settings so that every head fits in well under a second
    "random_forest": {"n_estimators": 5},
    "extra_trees": {"n_estimators": 5},
    "hist_gb": {"max_iter": 5},
    "torch_linear": {"max_epochs": 3},
    "torch_mlp": {"max_epochs": 3, "hidden_sizes": [16]},
    "zero_shot": {"text_encoder": "hashing", "class_names": {i: f"digit {i}" for i in range(10)}},
}


class Odd:
    """A type no head is made of."""

    def __init__(self) -> None:
        self.value = 1


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X[:400].astype(np.float32), y[:400]


@pytest.mark.parametrize("name", list_heads(all=True))
def test_every_head_round_trips_with_equal_predictions(name: str, digits, tmp_path: Path) -> None:
    X, y = digits
    pre = None if name == "zero_shot" else "l2+pca:16+standardize"
    est = make_head(name, FAST.get(name, {}), preprocess=pre).fit(X[:300], y[:300])
    path = dump_estimator({"estimator": est}, tmp_path / "h.skops")
    with zipfile.ZipFile(path) as z:  # a zip of JSON and .npy arrays: no pickle inside
        assert "schema.json" in z.namelist()
        assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in z.namelist())
    back = load_estimator(path)["estimator"]
    np.testing.assert_array_equal(back.predict(X[300:]), est.predict(X[300:]))
    if hasattr(est, "predict_proba"):  # the Pipeline has it when its head has it
        np.testing.assert_array_equal(back.predict_proba(X[300:]), est.predict_proba(X[300:]))


def test_trained_head_file_is_safe_and_keeps_provenance(digits, tmp_path: Path) -> None:
    X, y = digits
    store = make_store(tmp_path / "s.h5", X, y)
    head = train_head(store, "knn", out=tmp_path / "knn.skops")
    assert (tmp_path / "knn.skops").read_bytes()[:4] == b"PK\x03\x04"
    loaded = load_head(tmp_path / "knn.skops", expected_fingerprint="fp-test")
    assert loaded.spec == head.spec and loaded.classes == head.classes
    np.testing.assert_array_equal(loaded.predict_store(store).labels, head.predict(X))


def test_pickle_heads_need_trust_and_never_run_code_without_it(digits, tmp_path: Path) -> None:
    X, y = digits
    head = train_head(make_store(tmp_path / "s.h5", X, y), "logreg")
    old = tmp_path / "old.joblib"  # a head as embedpipe 0.1 wrote it
    joblib.dump(
        {
            "format": "embedpipe-head",
            "format_version": 1,
            "estimator": head.estimator,
            **head.metadata(),
        },
        old,
    )
    with pytest.raises(ConfigError, match=r"is a pickle \(joblib\).*--trust"):
        load_head(old)
    assert (load_head(old, trusted=True).predict(X) == head.predict(X)).all()

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):  # noqa: ANN204
            return (Path.touch, (marker,))

    (tmp_path / "evil.joblib").write_bytes(pickle.dumps({"format": "embedpipe-head", "x": Evil()}))
    with pytest.raises(ConfigError, match="runs code from the file"):
        load_head(tmp_path / "evil.joblib")
    assert not marker.exists()

    # a skops file that names a type outside the allow-list is refused before anything is built
    import skops.io as sio

    from embedpipe.heads.persist import trusted_types

    blob = sio.dumps({"format": "embedpipe-head", "estimator": Odd()})
    (tmp_path / "odd.skops").write_bytes(blob)
    odd = f"{Odd.__module__}.Odd"
    assert odd not in trusted_types()
    with pytest.raises(
        ConfigError, match=f"names types embedpipe does not load without trust: {odd}"
    ):
        load_head(tmp_path / "odd.skops")


def test_saving_uses_unique_temporary_files(digits, tmp_path: Path) -> None:
    X, y = digits
    head = train_head(make_store(tmp_path / "s.h5", X, y), "nearest_centroid")
    target = tmp_path / "heads" / "h.skops"
    target.parent.mkdir()
    # a stale fixed-name temporary (what embedpipe 0.1 used) must not matter
    (target.parent / "h.skops.tmp").mkdir()
    errors: list[BaseException] = []

    def save() -> None:
        try:
            for _ in range(5):
                head.save(target)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(os.listdir(target.parent)) == ["h.skops", "h.skops.tmp"]  # no leftovers
    assert isinstance(TrainedHead.load(target), TrainedHead)


def test_cli_trust_flag(digits, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from embedpipe.cli import heads_cmd

    app = typer.Typer()
    heads_cmd.register(app)
    X, y = digits
    store = make_store(tmp_path / "s.h5", X, y)
    head = train_head(store, "logreg")
    old = tmp_path / "old.joblib"
    joblib.dump(
        {
            "format": "embedpipe-head",
            "format_version": 1,
            "estimator": head.estimator,
            **head.metadata(),
        },
        old,
    )
    refused = CliRunner().invoke(app, ["evaluate", "-s", str(store), "--model", str(old)])
    assert isinstance(refused.exception, ConfigError) and "--trust" in str(refused.exception)
    ok = CliRunner().invoke(app, ["evaluate", "-s", str(store), "--model", str(old), "--trust"])
    assert ok.exit_code == 0, ok.output


class _Touch:
    """Unpickling this creates ``marker``: it stands for any code a pickle could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def _malicious_heads(tmp_path: Path, marker: Path) -> list[Path]:
    """Head files that run code when unpickled: every compression joblib accepts, a plain
    pickle padded to look large, and a plain pickle of plain values (still a pickle)."""
    import importlib.util

    import joblib.compressor

    payload = {"format": "embedpipe-head", "x": _Touch(marker)}
    files = []
    for method in joblib.compressor._COMPRESSORS:  # zlib, gzip, bz2, lzma, xz, lz4
        path = tmp_path / f"evil-{method}.joblib"
        if method == "lz4" and importlib.util.find_spec("lz4") is None:
            # what lz4's frame header looks like to joblib: the format decides, not the bytes
            path.write_bytes(b"\x04\x22\x4d\x18" + pickle.dumps(payload))
        else:
            joblib.dump(payload, path, compress=(method, 3))
        files.append(path)
    padded = tmp_path / "evil-padded.joblib"
    padded.write_bytes(pickle.dumps(payload) + b"\0" * (8 << 20))
    plain = tmp_path / "plain.joblib"
    plain.write_bytes(pickle.dumps({"format": "embedpipe-head", "values": [1, 2, 3]}))
    return [*files, padded, plain]


def test_no_pickle_loads_without_trust_whatever_its_compression(digits, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from embedpipe.cli import heads_cmd

    app = typer.Typer()
    heads_cmd.register(app)
    X, y = digits
    store = make_store(tmp_path / "s.h5", X, y)
    marker = tmp_path / "pwned"
    files = _malicious_heads(tmp_path, marker)
    assert len(files) >= 8
    for path in files:
        for load in (load_estimator, load_head):
            with pytest.raises(ConfigError, match=r"not in the safe \(skops\) format.*--trust"):
                load(path)
        for cmd in (
            ["predict", "--model", str(path), "--data", "builtin:digits?limit=5"],
            ["evaluate", "-s", str(store), "--model", str(path)],
        ):
            result = CliRunner().invoke(app, cmd)
            assert isinstance(result.exception, ConfigError), (path.name, result.output)
            assert "--trust" in str(result.exception)
        assert not marker.exists(), f"{path.name} ran code without --trust"
    # the user who made the file can still load it, and then it does what it says
    assert load_estimator(files[2], trusted=True)["format"] == "embedpipe-head"  # bz2
    assert marker.exists()
