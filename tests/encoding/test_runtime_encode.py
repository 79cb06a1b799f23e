"""Encodes on a runtime other than torch: the store records runtime and fidelity, its identity
includes them (a resume across runtimes is refused), and queries through the same runtime
equal the store's rows. Tiny models; skipped where neither runtime is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedpipe import open_source
from embedpipe.backbones import load_backbone
from embedpipe.backbones.runtimes import RUNTIMES
from embedpipe.encoding import encode
from embedpipe.encoding.engine import encode_items
from embedpipe.errors import ConfigError, StoreError
from embedpipe.index.queries import load_query_encoder, runtime_of_label
from embedpipe.store import FeatureStore

INSTALLED = [n for n in ("onnxruntime", "openvino") if RUNTIMES.get(n).available()]
pytestmark = [
    pytest.mark.skipif(
        not INSTALLED,
        reason="neither onnxruntime nor openvino is installed (extras onnx, openvino)",
    ),
    pytest.mark.runtimes,
]
KW = {"batch_size": 8, "progress": False, "num_workers": 0}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDPIPE_CACHE", str(tmp_path / "cache"))


def _enc():
    return load_backbone("resnet18", weights=None, crop_size=32, resize_size=32, seed=0)


def test_store_records_runtime_and_fidelity_and_refuses_a_resume_across_runtimes(
    tmp_path: Path,
) -> None:
    runtime = INSTALLED[0]
    version = RUNTIMES.get(runtime).version()
    out = tmp_path / "rt.h5"
    res = encode(open_source("builtin:digits?limit=20"), _enc(), out, runtime=runtime, **KW)
    assert res.precision == f"fp32@{runtime}-{version}"
    assert res.runtime.startswith(f"{runtime} fp32") and "min cos" in res.summary()
    with FeatureStore(out) as fs:
        assert fs.precision == f"fp32@{runtime}-{version}"
        info = fs.provenance["extra"]["runtime"]
        assert info["runtime"] == runtime and info["runtime_version"] == version
        assert info["precision"] == "fp32" and info["min_cosine_to_torch_fp32"] >= 0.999
        assert info["min_cosine_threshold"] == 0.999 and info["calibration_items"] == 8
    more = open_source("builtin:digits?limit=30")
    with pytest.raises(StoreError) as e:
        encode(more, _enc(), out, **KW)  # torch now
    msg = str(e.value)
    assert f"on runtime {runtime} {version}" in msg and f"runtime={runtime!r}" in msg
    names = ("precision", "runtime", "allow_mixed_precision", "overwrite")
    cli = e.value.worded({n: "--" + n.replace("_", "-") for n in names})  # embedpipe encode's
    assert f"--runtime {runtime}" in cli and "runtime=" not in cli
    assert "\n" not in msg
    # The same runtime resumes; "auto" resuming keeps the runtime the store recorded.
    res = encode(more, _enc(), out, runtime="auto", **KW)
    assert (res.n_resumed, res.n_encoded) == (20, 10)
    assert res.precision == f"fp32@{runtime}-{version}"
    # Mixing is possible when asked for, and the label says so.
    res = encode(
        open_source("builtin:digits?limit=35"), _enc(), out, allow_mixed_precision=True, **KW
    )
    with FeatureStore(out) as fs:
        assert sorted(fs.precision.split("+")) == sorted(["fp32", f"fp32@{runtime}-{version}"])


def test_reuse_across_runtimes_is_refused(tmp_path: Path) -> None:
    runtime = INSTALLED[0]
    src = open_source("builtin:digits?limit=16")
    encode(src, _enc(), tmp_path / "torch.h5", **KW)
    with pytest.raises(StoreError, match="cannot reuse features of .*precision 'fp32'"):
        encode(
            src,
            _enc(),
            tmp_path / "rt.h5",
            runtime=runtime,
            reuse_from=[tmp_path / "torch.h5"],
            **KW,
        )


def test_queries_through_the_stores_runtime_equal_its_rows(tmp_path: Path) -> None:
    runtime = INSTALLED[-1]
    src = open_source("builtin:digits?limit=12")
    out = tmp_path / "rt.h5"
    encode(src, _enc(), out, runtime=runtime, precision="fp32", **KW)
    with FeatureStore(out) as fs:
        rows = fs.features[:]
        backbone, fingerprint, label = fs.backbone, fs.fingerprint, fs.precision
    assert runtime_of_label(label) == (runtime, "fp32")
    enc = load_query_encoder(backbone, fingerprint, runtime=runtime)
    queries = encode_items(enc, [src.load(i) for i in range(len(src))], batch_size=5)
    assert enc.runtime == runtime
    np.testing.assert_allclose(queries, rows, rtol=1e-4, atol=1e-5)


def test_explicit_runtime_below_threshold_fails_before_any_row(tmp_path: Path) -> None:
    out = tmp_path / "rt.h5"
    with pytest.raises(ConfigError, match=r"runtime_min_cosine="):
        # no runtime gives a cosine of exactly 1 on every row: the threshold refuses it
        encode(
            open_source("builtin:digits?limit=16"),
            _enc(),
            out,
            runtime=INSTALLED[0],
            runtime_min_cosine=1.0,
            **KW,
        )
    assert not out.exists()


def test_sharded_encode_refuses_auto(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="runtime='auto' chooses per process"):
        encode(
            open_source("builtin:digits?limit=8"),
            _enc(),
            tmp_path / "s.h5",
            runtime="auto",
            n_shards=2,
            **KW,
        )


def test_options_check_runtime_and_threshold() -> None:
    from embedpipe.encoding import EncodeOptions

    with pytest.raises(ConfigError, match="runtime='openvno'; use one of 'auto'"):
        EncodeOptions(runtime="openvno")
    with pytest.raises(ConfigError, match=r"runtime_min_cosine=2; it must be a number in \(0, 1\]"):
        EncodeOptions(runtime_min_cosine=2)


def test_embedder_runs_on_the_runtime(tmp_path: Path) -> None:
    from PIL import Image

    from embedpipe.backbones.runtimes.encoder import min_cosine
    from embedpipe.heads import Embedder

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (36, 36, 3), dtype=np.uint8)) for _ in range(5)]
    opts = {"weights": None, "crop_size": 32, "resize_size": 32}
    ref = Embedder("resnet18", backbone_options=opts).fit(images).transform(images)
    emb = Embedder("resnet18", backbone_options=opts, runtime=INSTALLED[0]).fit(images)
    got = emb.transform(images)
    assert emb._load().runtime == INSTALLED[0]
    assert min_cosine(got, ref) >= 0.9999


def test_auto_keeps_torch_for_an_encode_too_small_to_repay_calibration(tmp_path: Path) -> None:
    from embedpipe.encoding.engine import AUTO_MIN_BATCHES

    small = open_source(f"builtin:digits?limit={8 * (AUTO_MIN_BATCHES - 1)}")
    res = encode(small, _enc(), tmp_path / "small.h5", runtime="auto", **KW)
    assert res.precision == "fp32"
    assert f"{AUTO_MIN_BATCHES - 1} batches, under {AUTO_MIN_BATCHES}" in res.runtime
    big = open_source(f"builtin:digits?limit={8 * AUTO_MIN_BATCHES}")
    res = encode(big, _enc(), tmp_path / "big.h5", runtime="auto", **KW)
    assert "auto:" in res.runtime and "calibration items" in res.runtime
