"""``embedpipe index``, ``search``, ``eval-index`` and ``serve``: similarity search commands."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ConfigError
from ..index.kinds import kinds_help
from ._common import AllowIncompleteOption, QuietOption

CONTENT_WIDTH = 70
_DIM_HELP = (
    "Index only the first N dimensions (Matryoshka prefix; the held-out recall printed says "
    "what it costs; --rerank re-scores with the full vectors)."
)


def _parse_params(values: list[str] | None) -> list[dict[str, int]]:
    out = []
    for v in values or []:
        name, sep, num = v.partition("=")
        if not sep or not num.strip().lstrip("-").isdigit():
            raise ConfigError(f"--param {v!r}: write NAME=INTEGER, e.g. nprobe=16 or efSearch=64.")
        out.append({name.strip(): int(num)})
    return out


def index_command(
    stores: Annotated[list[Path], typer.Argument(help="Feature stores (.h5) of one backbone.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index folder to write.")],
    kind: Annotated[str, typer.Option(help=kinds_help() + ".")] = "auto",
    metric: Annotated[str, typer.Option(help="cosine, l2 or ip.")] = "cosine",
    target_recall: Annotated[
        float, typer.Option(help="recall@k the search parameter is tuned to (0 disables tuning).")
    ] = 0.95,
    k: Annotated[int, typer.Option("--k", "-k", help="The k of the tuned recall@k.")] = 10,
    memory_budget: Annotated[
        str | None, typer.Option(help="Memory the index may use, e.g. 4GB (default: half the RAM).")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(help="Fixed search parameter instead of tuning, e.g. nprobe=16."),
    ] = None,
    rerank: Annotated[
        int | None,
        typer.Option(
            help="Candidates per query re-ranked exactly from the stores' float features "
            "(compressed kinds: ivfpq, ivfsq, binary; 0: off; default: the kind's own)."
        ),
    ] = None,
    tune_queries: Annotated[
        Path | None,
        typer.Option(
            help="Tuning queries: a store (same backbone) or a file of raw queries (.txt, one "
            "per line, or a table with a 'query' column); default: held-out rows of the stores."
        ),
    ] = None,
    n_tune_queries: Annotated[int, typer.Option(help="Number of tuning queries.")] = 1000,
    dim: Annotated[int | None, typer.Option(help=_DIM_HELP)] = None,
    image_root: Annotated[
        Path | None, typer.Option(help="Folder the ids are image paths in (thumbnails).")
    ] = None,
    prefix_ids: Annotated[
        bool, typer.Option(help="Prefix ids with their store's name (stores with overlapping ids).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the training and tuning samples.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing index folder.")] = False,
    allow_incomplete: AllowIncompleteOption = False,
    quiet: QuietOption = False,
) -> None:
    """Build a FAISS index from feature stores, tune it and save it; on an existing index of
    the same backbone, update it: add the new rows, remove the rows gone (--overwrite rebuilds)."""
    from ..index import build_index
    from ..index.metric import check_metric
    from ..index.persist import is_index_dir

    if out.exists() and not overwrite and is_index_dir(out):
        from ..index.update import update_index

        _, upd = update_index(out, stores, image_root=image_root, seed=seed, progress=not quiet)
        typer.echo(f"{out}: {upd.summary()}")
        return
    if out.exists() and not overwrite and out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{str(out)!r} already exists; pass --overwrite to replace it.")
    params = _parse_params(param)
    fixed = {k_: v for p in params for k_, v in p.items()}
    index = build_index(
        stores,
        kind,
        metric=check_metric(metric),
        target_recall=target_recall or None,
        k=k,
        memory_budget=memory_budget,
        search_params=fixed or None,
        rerank=rerank,
        tune_queries=tune_queries,
        n_tune_queries=n_tune_queries,
        image_root=image_root,
        prefix_ids=prefix_ids,
        seed=seed,
        progress=not quiet,
        allow_incomplete=allow_incomplete,
        dim=dim,
    )
    index.save(out, overwrite=overwrite)
    for line in build_summary(index, out):
        typer.echo(line)


def build_summary(index: Any, out: Path) -> list[str]:
    """What a build printed: the plan, memory against Flat, and the held-out recall, saying
    what it was measured on."""
    from ..index.persist import INDEX_FILE
    from ..units import format_bytes as fmt_bytes

    m = index.meta
    prefix = f", first {m.truncate_dim} dimensions" if m.truncate_dim else ""
    lines = [
        f"{out}: {m.factory} ({m.kind}: {m.plan_reason}{prefix}) over {m.n} x {m.dim} "
        f"{m.metric} vectors, built in {m.build_seconds:.1f}s"
    ]
    size = (out / INDEX_FILE).stat().st_size
    flat = m.n * m.dim * 4
    lines.append(
        f"memory {fmt_bytes(size)} ({size / max(flat, 1):.3g}x of Flat's {fmt_bytes(flat)})"
    )
    if m.tuning:
        from ..index.tune import TuneResult

        res = TuneResult(**m.tuning)
        lines.append(f"tuned {res.param}={res.value}: {res.summary()}")
    elif m.recall:
        r = m.recall
        lines.append(
            f"held-out recall@{r['k']} {r['recall']:.4f} (95% interval {r['recall_low']:.4f}-"
            f"{r['recall_high']:.4f}) on {r['n_queries']} queries ({r['queries']})"
        )
    elif m.search_params:
        lines.append("search params: " + ", ".join(f"{a}={b}" for a, b in m.search_params.items()))
    if m.tuning or m.recall:
        lines.append(
            "recall holds for queries like these; queries from another domain can score lower "
            "(see docs/search.md), so tune on real ones with --tune-queries"
        )
    if m.rerank:
        lines.append(f"exact re-rank of the top {m.rerank} candidates from the stores' features")
    return lines


def _cut(text: str | None, width: int = CONTENT_WIDTH) -> str:
    if not text:
        return ""
    one = " ".join(text.split())
    return one if len(one) <= width else one[: width - 1] + "…"


def search_command(
    index_path: Annotated[Path, typer.Argument(metavar="INDEX", help="An index folder.")],
    query: Annotated[
        str | None,
        typer.Option(
            "--query", help="Text to search for (text indexes, or image indexes of a dual encoder)."
        ),
    ] = None,
    query_image: Annotated[
        Path | None, typer.Option("--query-image", help="Image file to search for (image indexes).")
    ] = None,
    query_id: Annotated[
        str | None, typer.Option("--query-id", help="Id of an indexed item: its neighbours.")
    ] = None,
    queries: Annotated[
        Path | None,
        typer.Option(
            "--queries",
            help="Batch: a store (.h5) of the index's backbone, a text file (one query per line) "
            "or a table with a 'query' column; needs --out.",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Batch: hits file (.parquet, .csv or .jsonl)."),
    ] = None,
    query_column: Annotated[
        str | None, typer.Option(help="Batch: the column of query texts in a --queries table.")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="Neighbours to show.")] = 10,
    where: Annotated[
        str | None,
        typer.Option(
            "--where",
            help="Only rows that match, e.g. \"label == 'rotten' and year >= 2020\" (columns: "
            "id, label, the stores' kept columns; ==, !=, <, <=, >, >=, in, and, or, not).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    device: Annotated[
        str, typer.Option(help="Device for encoding the query: auto, cpu, cuda.")
    ] = "auto",
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar; log warnings and errors only.")
    ] = False,
) -> None:
    """Search an index by text, image or id (or a file of queries with --queries); raw queries
    go through the index's own backbone (or its other tower, for a dual encoder)."""
    from ..index import SimilarityIndex
    from ..index.table import format_table

    given = [
        n
        for n, v in (
            ("--query", query),
            ("--query-image", query_image),
            ("--query-id", query_id),
            ("--queries", queries),
        )
        if v is not None
    ]
    if len(given) != 1:
        raise ConfigError(
            "give exactly one of --query TEXT, --query-image PATH, --query-id ID or --queries "
            f"FILE (got {given or 'none'})."
        )
    if (queries is None) != (out is None):
        raise ConfigError("--queries FILE and --out HITS go together (batch search).")
    from ..data import IMAGE_EXTENSIONS

    if query is not None and Path(query).suffix.lower() in IMAGE_EXTENSIONS:
        if not Path(query).is_file():
            raise ConfigError(
                f"--query {query!r} looks like an image file but there is none; give an "
                "existing image (--query-image PATH) or a text"
            )
        query_image, query = Path(query), None  # an image file given to --query: by image
    index = SimilarityIndex.load(index_path)
    if where is not None:
        index.where_mask(where)  # a bad filter fails before any model loads
    if queries is not None:
        from ..index.batch import read_queries, search_batch

        q = read_queries(queries, column=query_column)
        if q.texts is not None:
            index.encoder(device=device)
        path = search_batch(index, q, out, k=k, progress=not quiet, where=where)
        typer.echo(f"{path}: {len(q)} queries, up to {k} hits each")
        return
    if query is not None or query_image is not None:
        index.encoder(device=device)
    if query is not None:
        found: dict[str, Any] = {"texts": [query]}
    elif query_image is not None:
        found = {"images": [query_image]}
    else:
        found = {"ids": [str(query_id)]}
    hits = index.find(**found, k=k, where=where)[0]
    if as_json:
        typer.echo(json.dumps([{**h.to_dict(), "content": h.content} for h in hits], indent=2))
        return
    closer = "higher" if index.closer == "higher" else "lower"
    headers = ["rank", "id", "label", f"score ({index.metric}, {closer} is closer)"]
    rows = [[h.rank, h.id, h.label, f"{h.score:.4f}"] for h in hits]
    if any(h.content for h in hits):
        headers.append("content")
        for row, h in zip(rows, hits, strict=True):
            row.append(_cut(h.content))
    typer.echo(format_table(headers, rows))


def eval_index_command(
    index_path: Annotated[Path, typer.Argument(metavar="INDEX", help="An index folder.")],
    queries: Annotated[
        list[Path] | None,
        typer.Option(
            help="Store of query vectors, reported on its own after the held-out rows (repeatable)."
        ),
    ] = None,
    n_queries: Annotated[int, typer.Option(help="Number of queries per set.")] = 1000,
    param: Annotated[
        list[str] | None,
        typer.Option(help="Search parameter to measure (repeatable), e.g. nprobe=8."),
    ] = None,
    stores: Annotated[
        list[Path] | None,
        typer.Option(
            "--store", help="The index's source stores, if they moved (repeatable, in order)."
        ),
    ] = None,
    retrieval: Annotated[
        bool,
        typer.Option(
            help="Also measure retrieval quality: recall@k, MRR@k, nDCG@k, mAP with bootstrap "
            "intervals; relevance from labels (same label = relevant) or --relevance."
        ),
    ] = False,
    relevance: Annotated[
        Path | None,
        typer.Option(help="Relevance file (query id, item id per line; .csv, .tsv or .jsonl)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recall@1/10/100 (95% intervals) against exact search on held-out rows and on each
    --queries store, queries/s, memory and build time, one table per query set; with
    --retrieval (or --relevance), retrieval metrics too."""
    from ..index import SimilarityIndex
    from ..index.evaluate import evaluate_query_sets

    index = SimilarityIndex.load(index_path)
    sets: list[Path | None] = [None, *(queries or [])]
    reports = evaluate_query_sets(
        index,
        sets,
        n_queries=n_queries,
        params=_parse_params(param) or None,
        stores=stores,
    )
    retr = []
    if retrieval or relevance is not None:
        from ..index.retrieval import evaluate_retrieval

        retr = [
            evaluate_retrieval(index, queries=q, relevance=relevance, n_queries=n_queries)
            for q in sets
        ]
    if as_json:
        data = [r.to_dict() for r in reports]
        if retr:
            for d, r in zip(data, retr, strict=True):
                d["retrieval"] = r.to_dict()
        typer.echo(json.dumps(data[0] if len(data) == 1 else data, indent=2))
        return
    tables = [r.table() for r in reports] + [r.table() for r in retr]
    typer.echo("\n\n".join(tables))


def serve_command(
    index_path: Annotated[Path, typer.Argument(metavar="INDEX", help="An index folder.")],
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0: every interface).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
    image_root: Annotated[
        Path | None, typer.Option(help="Where the indexed images are now (thumbnails).")
    ] = None,
    preload: Annotated[bool, typer.Option(help="Load the backbone before serving.")] = True,
    map_view: Annotated[
        bool,
        typer.Option(
            "--map/--no-map",
            help="Serve an embedding map of the index's stores at /map (built on first visit).",
        ),
    ] = True,
    map_store: Annotated[
        list[Path] | None,
        typer.Option(
            help="Stores drawn on the map (repeatable; default: the stores the index was built "
            "from), e.g. the train and test stores of one dataset."
        ),
    ] = None,
) -> None:
    """Serve an index: JSON API (/search, /health), a search page and an embedding map (/map)
    (needs the serve extra)."""
    from ..index import load_index
    from ..index.server import require_serve, serve

    require_serve()
    index = load_index(index_path, image_root=image_root)
    routes: Callable[[Any], None] | None = None
    if map_view:
        stores = list(map_store or [])
        if not stores:
            stores = [Path(s.path) for s in index.meta.sources if Path(s.path).exists()]
        if stores:
            from ..report.map_server import MapPage, add_map_routes

            page = MapPage(stores, title=f"Embedding map: {index_path.name}")
            routes = partial(add_map_routes, page=page)
        else:
            typer.echo("(no map: the index's stores are not on this machine; pass --map-store)")
    typer.echo(f"serving {index_path} on http://{host}:{port}/ (Ctrl-C to stop)")
    serve(index, host=host, port=port, preload=preload, routes=routes)


def register(app: typer.Typer) -> None:
    app.command("index")(index_command)
    app.command("search")(search_command)
    app.command("eval-index")(eval_index_command)
    app.command("serve")(serve_command)
