"""The ``report`` stage: metrics, plots and neighbour examples (cached), and a page per run.

The cached entry holds ``report.json`` and its PNG files: everything that depends only on the
stage's inputs. After every run that includes the stage, :func:`render_run_page` writes the
HTML page into the run's folder, adding that run's stage timings and cache hits.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..pipeline.context import Entry, StageContext
from ..pipeline.kinds import ReportParams
from . import plots
from .html import render_page
from .neighbours import cosine_neighbours, pick_queries
from .projection import pca_2d, sample_rows

REPORT = "report.json"
TEXT_CHARS = 280


class _Items:
    """Raw items by id, from the datasets of the report's encode inputs (for thumbnails/text)."""

    def __init__(self, entries: list[Entry], out: Path) -> None:
        self.out = out
        self.where: dict[str, tuple[Any, int]] = {}
        for e in entries:
            if e.dataset is None:
                continue
            src = e.dataset.source
            for pos, item_id in enumerate(src.ids):
                self.where.setdefault(str(item_id), (src, pos))

    def show(self, item_id: str) -> dict[str, Any]:
        hit = self.where.get(item_id)
        if hit is None:
            return {}
        src, pos = hit
        try:
            item = src.load(pos)
        except Exception as e:  # noqa: BLE001 - a report shows what it can
            return {"error": f"{type(e).__name__}: {e}"}
        if isinstance(item, str):
            return {"text": item if len(item) <= TEXT_CHARS else item[: TEXT_CHARS - 1] + "…"}
        name = hashlib.blake2b(item_id.encode(), digest_size=8).hexdigest() + ".png"
        plots.thumbnail_png(item, self.out / "thumbs" / name)
        return {"thumb": f"thumbs/{name}"}


def _heads_table(evaluation: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for r in evaluation["results"]:
        scores = {m: (None if s is None else s["mean"]) for m, s in r["scores"].items()}
        rows.append(
            {
                "name": r["name"],
                "label": r["head"].get("label", r["head"].get("name", "")),
                "scores": scores,
                "fit_seconds": None if r.get("fit_seconds") is None else r["fit_seconds"]["mean"],
                "predict_seconds": None
                if r.get("predict_seconds") is None
                else r["predict_seconds"]["mean"],
            }
        )
    return rows


def _neighbours(ctx: StageContext, p: ReportParams, items: _Items) -> dict[str, Any] | None:
    from ..store import FeatureStore

    test = ctx.input("test")
    if test is None or p.n_examples == 0:
        return None
    with FeatureStore(test.file("store")) as fs:
        q_rows = pick_queries(fs.labels, p.n_examples, ctx.seed)
        queries = fs.read(q_rows)
        q_ids = fs.ids[q_rows].tolist()
        q_labels = fs.labels[q_rows].tolist()
        classes = fs.classes
        fingerprint = fs.fingerprint
        modality = (fs.backbone or {}).get("modality", "")
    found: list[list[dict[str, Any]]] = []
    index_entry, train = ctx.input("index"), ctx.input("train")
    if index_entry is not None:
        from ..index import SimilarityIndex

        index = SimilarityIndex.load(index_entry.file("index"))
        results = index.search(queries, p.n_neighbors + 1, fingerprint=fingerprint)
        gallery = f"index {index_entry.name!r} ({index.meta.factory}, {index.meta.metric})"
        for qid, res in zip(q_ids, results, strict=True):
            found.append(
                [
                    {"id": nb.id, "label": nb.label, "score": float(nb.score)}
                    for nb in res
                    if nb.id != qid
                ][: p.n_neighbors]
            )
    else:
        g_entry = train or test
        with FeatureStore(g_entry.file("store")) as g:
            g.check_fingerprint(fingerprint, "gallery features")
            exclude = g.index_of(q_ids) if g_entry is test else None
            scores, rows = cosine_neighbours(queries, g.features, p.n_neighbors, exclude)
            g_ids, g_labels, g_classes = g.ids, g.labels, g.classes
        gallery = f"{g_entry.name!r} (exact cosine)"
        for s_row, r_row in zip(scores, rows, strict=True):
            found.append(
                [
                    {
                        "id": str(g_ids[r]),
                        "label": g_classes[g_labels[r]] if g_labels[r] >= 0 else None,
                        "score": float(s),
                    }
                    for s, r in zip(s_row.tolist(), r_row.tolist(), strict=True)
                ]
            )
    examples = []
    for qid, qlab, nbs in zip(q_ids, q_labels, found, strict=True):
        q_name = classes[qlab] if qlab >= 0 else None
        for nb in nbs:
            nb["same_label"] = nb["label"] is not None and nb["label"] == q_name
            nb.update(items.show(nb["id"]))
        query: dict[str, Any] = {"id": qid, "label": q_name, **items.show(qid)}
        examples.append({"query": query, "neighbours": nbs})
    return {"modality": modality, "gallery": gallery, "examples": examples}


def run(ctx: StageContext) -> dict[str, Any]:
    """Write ``report.json``, ``scores.png``, ``confusion.png``, ``projection.png`` and thumbnails."""
    p: ReportParams = ctx.params  # type: ignore[assignment]
    ev = ctx.require("evaluate")
    evaluation = json.loads(ev.file("evaluation").read_text(encoding="utf-8"))
    metric = evaluation["ranking_metric"]
    heads = _heads_table(evaluation)
    if not heads:
        raise ConfigError(
            f"stage {ctx.name!r} (report): evaluate stage {ev.name!r} holds no heads."
        )
    out = ctx.out
    classes = list(evaluation["data"].get("classes", []))
    best = evaluation["results"][0]
    plots.scores_png(
        [h["name"] for h in heads],
        [h["scores"].get(metric) or 0.0 for h in heads],
        metric,
        out / "scores.png",
    )
    plots.confusion_png(
        best["confusion_matrix"],
        classes,
        out / "confusion.png",
        title=f"{best['name']} on the test set",
    )
    data: dict[str, Any] = {
        "title": p.title or f"{ctx.pipeline.name}: {ctx.name}",
        "pipeline": ctx.pipeline.name,
        "stage": ctx.name,
        "evaluate": ev.name,
        # metrics no head has (e.g. top-k accuracy with two classes) get no column
        "metrics": [
            m for m in evaluation["metrics"] if any(h["scores"].get(m) is not None for h in heads)
        ],
        "ranking_metric": metric,
        "heads": heads,
        "best": best["name"],
        "classes": classes,
        "n_test": evaluation["data"].get("n_rows"),
        "backbone": (evaluation["data"].get("backbone") or {}).get("name"),
        "confusion": {
            "head": best["name"],
            "matrix": best["confusion_matrix"],
            "png": "confusion.png",
        },
        "per_class": best["per_class"],
        "scores_png": "scores.png",
        "projection": None,
        "neighbours": None,
    }
    test = ctx.input("test")
    if test is not None:
        from ..store import FeatureStore

        with FeatureStore(test.file("store")) as fs:
            rows = sample_rows(len(fs), p.max_points, fs.labels, ctx.seed)
            points, explained = pca_2d(fs.read(rows))
            plots.projection_png(
                points, fs.labels[rows], fs.classes, out / "projection.png", explained
            )
            data["projection"] = {
                "png": "projection.png",
                "method": "PCA (exact SVD)",
                "n_points": int(len(rows)),
                "of": len(fs),
                "explained": [float(v) for v in explained],
                "input": test.name,
            }
    items = _Items([e for e in (ctx.input("test"), ctx.input("train")) if e is not None], out)
    data["neighbours"] = _neighbours(ctx, p, items)
    (out / REPORT).write_text(json.dumps(data, indent=1, default=_json_default), encoding="utf-8")
    return {"report": REPORT, "best": best["name"], "ranking_metric": metric}


def render_run_page(entry: Entry, manifest: dict[str, Any], run_dir: Path) -> Path:
    """Write ``<run_dir>/<stage>.html`` (and its files) from a report entry and a run manifest."""
    data = json.loads(entry.file("report").read_text(encoding="utf-8"))
    files = run_dir / f"{entry.name}_files"
    if files.exists():
        shutil.rmtree(files)
    files.mkdir(parents=True)
    for f in entry.path.rglob("*.png"):
        dest = files / f.relative_to(entry.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    page = run_dir / f"{entry.name}.html"
    page.write_text(render_page(data, manifest, files.name), encoding="utf-8")
    return page


def _json_default(o: Any) -> Any:  # pragma: no cover - numpy scalars in report data
    if isinstance(o, np.generic):
        return o.item()
    return str(o)
