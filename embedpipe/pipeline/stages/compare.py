"""``compare`` stages: a leaderboard over evaluate stages (typically every branch of a matrix).

For each feature extractor (the encode stage a head was trained on: a backbone, a layer, a
pooling...) the leaderboard keeps its best head, with accuracy and macro-F1 and their bootstrap
95% intervals, the feature dimension, encode items/s, store size and the head's fit time, and
marks the accuracy / encode-cost Pareto front (see :mod:`embedpipe.heads.leaderboard`). The
stage also writes every head's result into one ``evaluation.json``, so a ``report`` stage reads
a compare stage as it reads an evaluate stage, and adds the leaderboard section.
"""

from __future__ import annotations

import json
import shutil
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ...errors import ConfigError
from ..context import StageContext
from ..kinds import Params, Role, kind_info, register_stage_kind
from ..matrix import short_value
from ..measure import folder_bytes

EVALUATION = "evaluation.json"
LEADERBOARD = "leaderboard.json"
TABLE = "leaderboard.md"
_FEATURES = Role(("encode",))


class CompareParams(Params):
    """``compare``: the best head of each feature extractor, and what each one costs."""

    metric: Literal["accuracy", "macro_f1"] = Field(
        "accuracy", description="Picks each extractor's best head and orders the table."
    )
    n_boot: int = Field(1000, ge=100, description="Bootstrap resamples of the test items.")


def _features_stage(ctx: StageContext, head: str) -> str | None:
    """The nearest upstream stage of ``head`` that provides features (its encode stage)."""
    stages = ctx.pipeline.stages
    todo = list(stages[head].upstream) if head in stages else []
    seen: set[str] = set()
    while todo:
        n = todo.pop(0)
        if n in seen:
            continue
        seen.add(n)
        if _FEATURES.accepts(kind_info(stages[n].kind)):
            return n
        todo.extend(stages[n].upstream)
    return None


def _group(ctx: StageContext, feat: str, outputs: dict[str, Any]) -> str:
    st = ctx.pipeline.stages[feat]
    backbone = short_value(outputs.get("backbone") or getattr(st.params, "backbone", st.base))
    axes = [
        f"{k.rsplit('.', 1)[-1]}={short_value(v)}" for k, v in st.axes.items() if k != "backbone"
    ]
    p = st.params
    for k in ("layer", "pooling"):
        v = getattr(p, k, None)
        if v is not None and not any(a.startswith(f"{k}=") for a in axes):
            axes.append(f"{k}={v}")
    return " ".join([backbone, *axes])


def _head_label(result: Any) -> str:
    """What the head is (``logreg+standardize``); its stage name when it has no label."""
    label = result.head.get("label") if isinstance(result.head, dict) else None
    return str(label or result.name)


@register_stage_kind(
    "compare",
    version=1,
    params=CompareParams,
    inputs={"evaluate": Role(("evaluation",), many=True)},
    names_in_key=True,
    provides=("evaluation",),
    main_output="leaderboard",
    describe=lambda p: f"leaderboard by {p.metric}",
)
def run(ctx: StageContext) -> dict[str, Any]:
    """Write ``leaderboard.json`` / ``.md``, a merged ``evaluation.json`` and the predictions."""
    from ...heads.evaluation import EvaluationReport, HeadResult
    from ...heads.leaderboard import Candidate, format_table, leaderboard

    p: CompareParams = ctx.params  # type: ignore[assignment]
    results: list[HeadResult] = []
    data: dict[str, Any] | None = None
    predictions: dict[str, str] = {}
    candidates: list[Candidate] = []
    for ev in ctx.inputs["evaluate"]:
        report = EvaluationReport.from_json(ev.file("evaluation"))
        preds = ev.outputs.get("predictions", {})
        for r in report.results:
            rel = preds.get(r.name)
            if not isinstance(rel, str):
                raise ConfigError(
                    f"stage {ctx.name!r} (compare): {ev.name!r} kept no predictions of {r.name!r}."
                )
            dest = ctx.out / "predictions" / f"{r.name}.npz"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ev.path / rel, dest)
            predictions[r.name] = f"predictions/{r.name}.npz"
            with np.load(dest) as z:
                y_true, y_pred = z["y_true"], z["y_pred"]
            feat = _features_stage(ctx, r.name)
            info: dict[str, Any] = {"evaluate": ev.name, "stage": r.name}
            dim = ips = size = None
            group = r.name
            if feat is not None:
                sk = ctx.pipeline.key(feat)
                meta = ctx.cache.meta(sk.kind, sk.key)
                out = meta.get("outputs", {})
                group = _group(ctx, feat, out)
                dim = out.get("dim")
                rate = out.get("items_per_s")
                ips = float(rate) if rate and out.get("n_encoded", 1) else None
                size = folder_bytes(ctx.cache.entry_dir(sk.kind, sk.key))
                info["features"] = feat
            fit = r.fit_seconds["mean"] if r.fit_seconds else None
            label = _head_label(r)
            candidates.append(Candidate(group, label, y_true, y_pred, dim, ips, size, fit, info))
            results.append(r)
        data = data or {k: v for k, v in report.data.items() if k != "backbone"}
    if not results:
        raise ConfigError(f"stage {ctx.name!r} (compare): its evaluate stages hold no heads.")
    rows = leaderboard(candidates, metric=p.metric, n_boot=p.n_boot, seed=ctx.seed)
    merged = EvaluationReport(
        "holdout",
        data or {},
        {"compare": [e.name for e in ctx.inputs["evaluate"]]},
        results,
        ranking_metric=p.metric,
    )
    merged.to_json(ctx.out / EVALUATION)
    board = {"metric": p.metric, "level": 0.95, "rows": [r.to_dict() for r in rows]}
    (ctx.out / LEADERBOARD).write_text(json.dumps(board, indent=1), encoding="utf-8")
    (ctx.out / TABLE).write_text(format_table(rows) + "\n", encoding="utf-8")
    scores = {r.name: {m: r.mean(m) for m in merged.metrics} for r in merged.results}
    return {
        "evaluation": EVALUATION,
        "leaderboard": LEADERBOARD,
        "table": TABLE,
        "predictions": predictions,
        "best": rows[0].group,
        "best_head": rows[0].head,
        "ranking_metric": p.metric,
        "scores": json.loads(json.dumps(scores)),
    }
