"""``embedpipe curate``: duplicates, leaks, outliers and label issues in feature stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

#: Rows of each issue printed to the terminal (the files hold all of them).
SHOWN = 10


def curate_command(
    stores: Annotated[
        list[Path],
        typer.Argument(help="Feature stores of one backbone, e.g. TRAIN.h5 TEST.h5."),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Folder for issues.parquet, issues.csv, summary.json, curate.html and map.html.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the summary and every flagged item as JSON.")
    ] = False,
    k: Annotated[int, typer.Option("--k", "-k", help="Neighbours per item in the graph.")] = 10,
    near_dup_threshold: Annotated[
        float | None,
        typer.Option(help="Cosine at or above which items are near-duplicates (default: auto)."),
    ] = None,
    labels: Annotated[
        bool, typer.Option("--labels/--no-labels", help="Look for label issues.")
    ] = True,
    head: Annotated[
        str, typer.Option(help="Head cross-validated for label issues (embedpipe heads).")
    ] = "logreg",
    folds: Annotated[int, typer.Option(help="Cross-validation folds for label issues.")] = 5,
    engine: Annotated[
        str, typer.Option(help="Confident learning by: auto, cleanlab or builtin.")
    ] = "auto",
    knn_weight: Annotated[
        float, typer.Option(help="Share of a neighbour vote blended into the head's probabilities.")
    ] = 0.3,
    outlier_z: Annotated[
        float, typer.Option(help="Robust sigmas above the median outlier score to flag.")
    ] = 4.0,
    method: Annotated[
        str, typer.Option(help="kNN graph: auto, exact or ivf (auto: exact up to 50k rows).")
    ] = "auto",
    map_page: Annotated[
        bool, typer.Option("--map/--no-map", help="Write map.html (an embedding map) with --out.")
    ] = True,
    projection: Annotated[
        str,
        typer.Option(help="Map projection: auto (UMAP if installed, else PCA), umap, pca, tsne."),
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of folds, sampling and projection.")] = 0,
    allow_mixed_precision: Annotated[
        bool, typer.Option(help="Accept stores of one backbone at different precisions.")
    ] = False,
) -> None:
    """Find exact and near-duplicates, train/test leaks, outliers and label issues from one
    kNN graph over the stores.

    Example: embedpipe curate cache/train.h5 cache/test.h5 --out curate/ --json
    """
    from ..curate import curate

    result = curate(
        stores,
        k=k,
        near_dup_threshold=near_dup_threshold,
        labels=labels,
        head=head,
        folds=folds,
        engine=engine,  # type: ignore[arg-type]
        knn_weight=knn_weight,
        outlier_z=outlier_z,
        method=method,  # type: ignore[arg-type]
        seed=seed,
        allow_mixed_precision=allow_mixed_precision,
    )
    written: dict[str, Path] = {}
    if out is not None:
        from ..report.curate_page import write_curate_page

        written = result.save(out)
        written["page"] = write_curate_page(result, out / "curate.html")
        if map_page:
            from ..report.embedding_map import write_map

            written["map"] = write_map(
                result,
                out / "map.html",
                method=projection,  # type: ignore[arg-type]
                seed=seed,
            )
    if as_json:
        doc = result.to_json()
        doc["files"] = {name: str(p) for name, p in written.items()}
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    s = result.summary
    typer.echo(
        f"{s['rows']:,} items in {len(s['stores'])} store(s); graph {s['graph']}, k={s['k']}"
    )
    typer.echo(
        f"near-duplicate threshold {s['near_dup_threshold']:.4f} ({s['near_dup_threshold_how']})"
    )
    typer.echo(f"outliers: {s['outliers_how']}")
    typer.echo(f"label issues: {s['label_issues_how']}")
    typer.echo("found: " + ", ".join(f"{n} {issue}" for issue, n in s["counts"].items()))
    table = result.table
    for issue in s["counts"]:
        part = table[table["issue"] == issue].head(SHOWN)
        if not len(part):
            continue
        typer.echo(f"\n{issue} (top {len(part)} of {s['counts'][issue]}):")
        for rec in part.to_dict(orient="records"):
            content = str(rec["content"]).replace("\n", " ")[:60]
            extra = f" -> {rec['suggested_label']}" if rec["suggested_label"] else ""
            rel = ", ".join(rec["related"][:3])
            typer.echo(
                f"  {rec['split']}:{rec['id']}  score {rec['score']:.4f}  label "
                f"{rec['label'] or '-'}{extra}  related [{rel}]  {content!r}"
            )
    for name, p in written.items():
        typer.echo(f"wrote {name}: {p}")


def register(app: typer.Typer) -> None:
    app.command("curate")(curate_command)
