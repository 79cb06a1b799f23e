"""``curate`` stages: duplicates, leaks, outliers and label issues over encode stages'
stores, with the curate page and the embedding map."""

from __future__ import annotations

import shlex
from typing import Any, Literal

from pydantic import Field

from ..context import StageContext
from ..kinds import Params, Role, register_stage_kind


class CurateParams(Params):
    """``curate``: one kNN graph over the input stores, and every check from it."""

    k: int = Field(10, ge=1, description="Neighbours per item in the graph.")
    near_dup_threshold: float | None = Field(
        None, gt=0.0, le=1.0, description="Near-duplicate cosine (default: chosen from the data)."
    )
    labels: bool = Field(True, description="Look for label issues.")
    head: str = Field("logreg", description="Head cross-validated for label issues.")
    options: dict[str, Any] = Field(default_factory=dict, description="The head's parameters.")
    folds: int = Field(5, ge=2, description="Cross-validation folds.")
    engine: Literal["auto", "cleanlab", "builtin"] = "auto"
    knn_weight: float = Field(
        0.3, ge=0.0, le=1.0, description="Share of the neighbour-label vote in the probabilities."
    )
    outlier_z: float = Field(4.0, gt=0.0)
    method: Literal["auto", "exact", "ivf"] = "auto"
    map: bool = Field(True, description="Write the embedding map (map.html).")
    projection: Literal["auto", "umap", "pca", "tsne"] = "auto"
    max_points: int = Field(100_000, ge=1, description="Points drawn on the map at most.")


def next_steps(run: Any, upstream: dict[str, list[Any]]) -> list[str]:
    """Opening the page, and reading the table in a script."""
    where = run.output_path if hasattr(run, "output_path") else None
    if where is None:
        return []
    folder = shlex.quote(str(where.parent if where.suffix else where))
    return [
        f"open {folder}/curate.html   # the table; map.html: the embedding map",
        f"python -c \"import pandas as pd; print(pd.read_parquet('{folder}/issues.parquet'))\"",
    ]


@register_stage_kind(
    "curate",
    version=1,
    params=CurateParams,
    inputs={"features": Role(("encode",), many=True)},
    main_output="page",
    describe=lambda p: f"k={p.k}, head={p.head}, threshold={p.near_dup_threshold or 'auto'}",
    next_steps=next_steps,
)
def run(ctx: StageContext) -> dict[str, Any]:
    """Curate the input stores (in the order given; each named by its stage) into ``issues.parquet`` / ``issues.csv``,
    ``summary.json``, ``curate.html`` and (``map: true``) ``map.html``."""
    from ...curate import curate
    from ...report.curate_page import write_curate_page
    from ...report.embedding_map import write_map

    p: CurateParams = ctx.params  # type: ignore[assignment]
    entries = ctx.inputs.get("features", [])
    result = curate(
        [e.file("store") for e in entries],
        names=[e.name for e in entries],
        k=p.k,
        near_dup_threshold=p.near_dup_threshold,
        labels=p.labels,
        head=p.head,
        head_params=p.options,
        folds=p.folds,
        engine=p.engine,
        knn_weight=p.knn_weight,
        outlier_z=p.outlier_z,
        method=p.method,
        seed=ctx.seed,
    )
    result.save(ctx.out)
    write_curate_page(result, ctx.out / "curate.html", map_href="map.html" if p.map else None)
    outputs: dict[str, Any] = {
        "issues": "issues.parquet",
        "issues_csv": "issues.csv",
        "summary": "summary.json",
        "page": "curate.html",
        "counts": result.summary["counts"],
        "near_dup_threshold": result.summary["near_dup_threshold"],
        "rows": result.summary["rows"],
    }
    if p.map:
        write_map(
            result,
            ctx.out / "map.html",
            method=p.projection,
            max_points=p.max_points,
            seed=ctx.seed,
        )
        outputs["map"] = "map.html"
    return outputs
