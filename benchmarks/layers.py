"""Which layer transfers best: the leaderboards of ``pipelines/layers.yaml``, as README tables.

Runs the example pipeline (a cached re-run costs seconds) and writes each ``compare`` stage's
leaderboard as a result file (``layers-images``, ``layers-texts``) for the README blocks of the
same names (``benchmarks/readme_tables.py --write``).

    python benchmarks/layers.py [--cache cache]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import ROOT, emit  # noqa: E402

BOARDS = {
    "cnn_board": ("layers-images", "MobileNetV2 (ImageNet) layers on the bundled digits"),
    "text_board": ("layers-texts", "MiniLM layers and poolings on the bundled Rotten Tomatoes"),
}
COLUMNS = ["features", "best head", "accuracy", "95% CI", "macro-F1", "dim", "items/s", "fit s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--cache", type=Path, default=None, help="The pipeline cache (default ./cache)."
    )
    args = ap.parse_args()
    from embedpipe.pipeline import run_pipeline

    result = run_pipeline(ROOT / "pipelines" / "layers.yaml", cache=args.cache, progress=False)
    for stage, (name, title) in BOARDS.items():
        run = result[stage]
        board = json.loads((run.path / run.outputs["leaderboard"]).read_text())
        rows = []
        for r in board["rows"]:
            lo, hi = r["accuracy_ci"]
            rows.append(
                {
                    "features": r["group"] + (" *" if r["pareto"] else ""),
                    "best head": r["head"],
                    "accuracy": f"{r['accuracy']:.3f}",
                    "95% CI": f"{lo:.3f}–{hi:.3f}",
                    "macro-F1": f"{r['macro_f1']:.3f}",
                    "dim": r["dim"],
                    "items/s": None if r["items_per_s"] is None else round(r["items_per_s"], 1),
                    "fit s": None if r["fit_seconds"] is None else round(r["fit_seconds"], 3),
                }
            )
        notes = [
            "`*`: on the Pareto front of accuracy against encode cost; 95% CI: percentile "
            "bootstrap over the test items; each feature extractor's best of two heads.",
            "items/s is each encode stage's own measurement on this machine (shared cores: noisy).",
        ]
        emit(name, title, COLUMNS, rows, notes, extra={"leaderboard": board})


if __name__ == "__main__":
    main()
