"""``embedpipe index``, ``search``, ``eval-index`` and ``serve``: similarity search commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ..errors import ConfigError


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
    kind: Annotated[
        str, typer.Option(help="auto, flat, ivf, ivfsq, ivfpq, hnsw or a FAISS factory string.")
    ] = "auto",
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
    image_root: Annotated[
        Path | None, typer.Option(help="Folder the ids are image paths in (thumbnails).")
    ] = None,
    prefix_ids: Annotated[
        bool, typer.Option(help="Prefix ids with their store's name (stores with overlapping ids).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the training and tuning samples.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing index folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Build a FAISS index from feature stores, tune it and save it."""
    from ..index import build_index
    from ..index.metric import check_metric
    from ..index.persist import is_index_dir

    if (
        out.exists()
        and not overwrite
        and (is_index_dir(out) or (out.is_dir() and any(out.iterdir())))
    ):
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
        image_root=image_root,
        prefix_ids=prefix_ids,
        seed=seed,
        progress=not quiet,
    )
    index.save(out, overwrite=overwrite)
    m = index.meta
    typer.echo(
        f"{out}: {m.factory} ({m.kind}: {m.plan_reason}) over {m.n} x {m.dim} {m.metric} vectors, built in {m.build_seconds:.1f}s"
    )
    if m.tuning:
        t = m.tuning
        status = "reached" if t["reached"] else "NOT reached (best shown)"
        typer.echo(
            f"tuned {t['param']}={t['value']}: recall@{t['k']} {t['recall']:.4f} on {t['n_queries']} "
            f"held-out queries, target {t['target_recall']} {status}"
        )
    elif m.search_params:
        typer.echo("search params: " + ", ".join(f"{a}={b}" for a, b in m.search_params.items()))


def search_command(
    index_path: Annotated[Path, typer.Argument(metavar="INDEX", help="An index folder.")],
    query: Annotated[
        str | None, typer.Option("--query", help="Text to search for (text indexes).")
    ] = None,
    query_image: Annotated[
        Path | None, typer.Option("--query-image", help="Image file to search for (image indexes).")
    ] = None,
    query_id: Annotated[
        str | None, typer.Option("--query-id", help="Id of an indexed item: its neighbours.")
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", help="Neighbours to show.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    device: Annotated[
        str, typer.Option(help="Device for encoding the query: auto, cpu, cuda.")
    ] = "auto",
) -> None:
    """Search an index by text, image or id; raw queries go through the index's own backbone."""
    from ..index import SimilarityIndex
    from ..index.table import format_table

    given = [
        n
        for n, v in (("--query", query), ("--query-image", query_image), ("--query-id", query_id))
        if v is not None
    ]
    if len(given) != 1:
        raise ConfigError(
            f"give exactly one of --query TEXT, --query-image PATH or --query-id ID (got {given or 'none'})."
        )
    index = SimilarityIndex.load(index_path)
    if query is not None:
        index.encoder(device=device)
        hits = index.search_texts([query], k)[0]
    elif query_image is not None:
        index.encoder(device=device)
        hits = index.search_images([query_image], k)[0]
    else:
        hits = index.search_ids([str(query_id)], k)[0]
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], indent=2))
        return
    closer = "higher" if index.closer == "higher" else "lower"
    typer.echo(
        format_table(
            ["rank", "id", "label", f"score ({index.metric}, {closer} is closer)"],
            [[h.rank, h.id, h.label, f"{h.score:.4f}"] for h in hits],
        )
    )


def eval_index_command(
    index_path: Annotated[Path, typer.Argument(metavar="INDEX", help="An index folder.")],
    queries: Annotated[
        Path | None,
        typer.Option(help="Store of query vectors (default: held-out rows of the index)."),
    ] = None,
    n_queries: Annotated[int, typer.Option(help="Number of queries.")] = 1000,
    param: Annotated[
        list[str] | None,
        typer.Option(help="Search parameter to measure (repeatable), e.g. nprobe=8."),
    ] = None,
    store: Annotated[
        list[Path] | None,
        typer.Option(help="The index's source stores, if they moved (repeatable, in order)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Recall@1/10/100 against exact search, queries/s, memory and build time, as a table."""
    from ..index import SimilarityIndex, evaluate_index

    index = SimilarityIndex.load(index_path)
    report = evaluate_index(
        index,
        queries=queries,
        n_queries=n_queries,
        params=_parse_params(param) or None,
        stores=store,
    )
    typer.echo(json.dumps(report.to_dict(), indent=2) if as_json else report.table())


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
) -> None:
    """Serve an index: JSON API (/search, /health) and a search page (needs the serve extra)."""
    from ..index.server import require_serve, serve

    require_serve()
    typer.echo(f"serving {index_path} on http://{host}:{port}/ (Ctrl-C to stop)")
    serve(index_path, host=host, port=port, image_root=image_root, preload=preload)


def register(app: typer.Typer) -> None:
    app.command("index")(index_command)
    app.command("search")(search_command)
    app.command("eval-index")(eval_index_command)
    app.command("serve")(serve_command)
