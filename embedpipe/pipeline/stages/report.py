"""``report`` stages: metrics, plots and neighbour examples (cached), and a page per run.

The cached entry holds ``report.json`` and its PNG files: everything that depends only on the
stage's inputs. After every run that includes the stage, :func:`render_run_page` writes the
HTML page into the run's folder, adding that run's stage timings and cache hits.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ...errors import ConfigError
from ...report import plots
from ...report.html import render_page
from ...report.neighbours import (
    content_fields,
    cosine_neighbours,
    pick_queries,
    store_contents,
)
from ...report.projection import pca_2d, sample_rows
from ..context import Entry, StageContext
from ..kinds import Params, Role, register_stage_kind

REPORT = "report.json"
TEXT_CHARS = 280


class ReportParams(Params):
    """``report``: an HTML page with tables, plots and nearest-neighbour examples."""

    title: str | None = None
    n_examples: int = Field(6, ge=0, description="Query items shown with their neighbours.")
    n_neighbors: int = Field(5, gt=0)
    max_points: int = Field(2000, gt=0, description="Points drawn in the 2-D projection.")
    projection: Literal["pca"] = "pca"


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

    def show(self, item_id: str, folder: str = "thumbs") -> dict[str, Any]:
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
        plots.thumbnail_png(item, self.out / folder / name)
        return {"thumb": f"{folder}/{name}"}


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
                "intervals": r.get("intervals") or {},
            }
        )
    return rows


def _neighbours(ctx: StageContext, p: ReportParams, items: _Items) -> dict[str, Any] | None:
    from ...store import FeatureStore

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
        q_contents = store_contents(fs, q_rows)
    found: list[list[dict[str, Any]]] = []
    index_entry, train = ctx.input("index"), ctx.input("train")
    if index_entry is not None:
        from ...index import SimilarityIndex

        index = SimilarityIndex.load(index_entry.file("index"))
        results = index.search(queries, p.n_neighbors + 1, fingerprint=fingerprint)
        gallery = f"index {index_entry.name!r} ({index.meta.factory}, {index.meta.metric})"
        for qid, res in zip(q_ids, results, strict=True):
            found.append(
                [
                    {
                        "id": nb.id,
                        "label": nb.label,
                        "score": float(nb.score),
                        **content_fields(nb.content, nb.id, modality),
                    }
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
            g_contents = store_contents(g, rows.ravel())
        gallery = f"{g_entry.name!r} (exact cosine)"
        contents_of = dict(zip(rows.ravel().tolist(), g_contents, strict=True))
        for s_row, r_row in zip(scores, rows, strict=True):
            found.append(
                [
                    {
                        "id": str(g_ids[r]),
                        "label": g_classes[g_labels[r]] if g_labels[r] >= 0 else None,
                        "score": float(s),
                        **content_fields(contents_of[r], str(g_ids[r]), modality),
                    }
                    for s, r in zip(s_row.tolist(), r_row.tolist(), strict=True)
                ]
            )
    examples = []
    for qid, qlab, nbs, q_content in zip(q_ids, q_labels, found, q_contents, strict=True):
        q_name = classes[qlab] if qlab >= 0 else None
        for nb in nbs:
            nb["same_label"] = nb["label"] is not None and nb["label"] == q_name
            nb.update(items.show(nb["id"]))
        query: dict[str, Any] = {
            "id": qid,
            "label": q_name,
            **content_fields(q_content, qid, modality),
            **items.show(qid),
        }
        examples.append({"query": query, "neighbours": nbs})
    return {"modality": modality, "gallery": gallery, "examples": examples}


def _leaderboard(ev: Entry, out: Path) -> dict[str, Any] | None:
    """The leaderboard section, when the evaluation input is a ``compare`` stage (or any kind
    with a ``leaderboard`` output), with its accuracy / encode-cost plot."""
    rel = ev.outputs.get("leaderboard")
    if not isinstance(rel, str):
        return None
    board = json.loads((ev.path / rel).read_text(encoding="utf-8"))
    rows = board["rows"]
    costed = [r for r in rows if r.get("items_per_s")]
    png = None
    if costed:
        plots.pareto_png(
            [1000.0 / r["items_per_s"] for r in costed],
            [r["accuracy"] for r in costed],
            [r["group"] for r in costed],
            [r["pareto"] for r in costed],
            out / "pareto.png",
        )
        png = "pareto.png"
    return {"metric": board["metric"], "level": board.get("level", 0.95), "rows": rows, "png": png}


def render_run_page(entry: Entry, manifest: dict[str, Any], run_dir: Path) -> Path:
    """Write ``<run_dir>/<stage>.html`` (and its files) from a report entry and a run manifest."""
    data = json.loads(entry.file("report").read_text(encoding="utf-8"))
    files = run_dir / f"{entry.name}_files"
    if files.exists():
        shutil.rmtree(files)
    files.mkdir(parents=True)
    for f in [*entry.path.rglob("*.png"), *entry.path.glob("*.html")]:
        dest = files / f.relative_to(entry.path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    page = run_dir / f"{entry.name}.html"
    page.write_text(render_page(data, manifest, files.name), encoding="utf-8")
    return page


@register_stage_kind(
    "report",
    version=1,
    params=ReportParams,
    inputs={
        "evaluate": Role(("evaluation",)),
        "test": Role(("encode",), required=False),
        "train": Role(("encode",), required=False),
        "index": Role(("index",), required=False),
        "curate": Role(("curate",), required=False),
    },
    names_in_key=True,
    main_output="report",
    describe=lambda p: f"title={p.title!r}" if p.title else "",
    after_run=render_run_page,
)
def run(ctx: StageContext) -> dict[str, Any]:
    """Write ``report.json``, ``scores.png``, ``confusion.png``, ``projection.png`` and thumbnails
    (and, with a ``curate`` input, its page and embedding map)."""
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
        from ...store import FeatureStore

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
    data["leaderboard"] = _leaderboard(ev, out)
    # figures a reviewer trusts (embedpipe.heads.evaluation): the majority-class baseline, the
    # best head's misclassified test items (text or thumbnail), fine-tuning curves
    base = evaluation.get("baseline")
    data["baseline"] = _heads_table({"results": [base]})[0] if base else None
    data["errors"] = [
        {**e, **items.show(e["id"], "misclassified")} for e in (best.get("errors") or [])[:12]
    ]
    data["curves"] = [
        {"name": r["name"], "epochs": r["training_curve"]}
        for r in evaluation["results"]
        if r.get("training_curve")
    ]
    data["curate"] = _curate_section(ctx.input("curate"), out)
    (out / REPORT).write_text(json.dumps(data, indent=1, default=_json_default), encoding="utf-8")
    return {"report": REPORT, "best": best["name"], "ranking_metric": metric}


def _curate_section(cur: Entry | None, out: Path) -> dict[str, Any] | None:
    """A curate stage's counts, and its page and embedding map copied next to the report."""
    if cur is None:
        return None
    section: dict[str, Any] = {
        "input": cur.name,
        "counts": cur.outputs.get("counts", {}),
        "threshold": cur.outputs.get("near_dup_threshold"),
        "rows": cur.outputs.get("rows"),
        "page": None,
        "map": None,
    }
    for key, name in (("page", "curate.html"), ("map", "map.html")):
        if isinstance(cur.outputs.get(key), str):
            shutil.copy2(cur.file(key), out / name)
            section[key] = name
    return section


def _json_default(o: Any) -> Any:  # pragma: no cover - numpy scalars in report data
    if isinstance(o, np.generic):
        return o.item()
    return str(o)
