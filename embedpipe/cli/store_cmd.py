"""``embedpipe inspect``, ``verify`` and ``export``: looking at and moving out feature stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._common import source_kwargs

_SUFFIX = {"parquet": ".parquet", "csv": ".csv", "npy": "-npy", "hf": "-hf"}


def inspect_command(
    store: Annotated[Path, typer.Argument(help="A feature store (.h5).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the provenance as JSON.")] = False,
) -> None:
    """Print a feature store's provenance and shape.

    Example: embedpipe inspect cache/reviews.h5 --json
    """
    from ..store import FeatureStore

    with FeatureStore(store) as fs:
        prov = fs.provenance
        prov["n_errors"] = len(fs.errors)
        prov["classes"] = fs.classes
        prov["columns"] = fs.column_names
        prov["precision"] = fs.precision
        if as_json:
            typer.echo(json.dumps(prov, indent=2, default=str))
            return
        bb = prov["backbone"]
        typer.echo(f"store        {store}")
        typer.echo(f"shape        {prov['n_rows']} x {prov['dim']} {prov['dtype']}")
        typer.echo(f"complete     {prov['complete']}")
        typer.echo(f"schema       {fs.schema_version}")
        typer.echo(f"precision    {fs.precision or 'unknown'}")
        typer.echo(
            f"backbone     {bb.get('kind')}:{bb.get('name')} weights={bb.get('weights')} layer={bb.get('layer')} pooling={bb.get('pooling')}"
        )
        typer.echo(f"weights id   {bb.get('weights_id')}")
        typer.echo(f"fingerprint  {prov['fingerprint']}")
        typer.echo(f"preprocess   {json.dumps(bb.get('preprocessing', {}), default=str)}")
        typer.echo(f"dataset      {prov['dataset_digest']}")
        typer.echo(
            f"classes      {len(fs.classes)}: {', '.join(fs.classes[:10])}{' ...' if len(fs.classes) > 10 else ''}"
        )
        if fs.column_names:
            typer.echo(f"columns      {', '.join(fs.column_names)}")
        typer.echo(f"skipped      {prov['n_errors']}")
        typer.echo(f"created      {prov['created']}")
        typer.echo(f"versions     {', '.join(f'{k} {v}' for k, v in prov['versions'].items())}")
        extra = prov.get("extra") or {}
        if extra:
            typer.echo(f"encode       {json.dumps(extra, default=str)}")


def verify_command(
    store: Annotated[Path, typer.Argument(help="A feature store (.h5).")],
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also re-encode a random sample of items (needs --data) and compare them "
            "with the stored rows within the precision's tolerance.",
        ),
    ] = False,
    data: Annotated[
        str | None, typer.Option(help="The data the store was encoded from (for --deep).")
    ] = None,
    sample: Annotated[int, typer.Option(help="Rows re-encoded by --deep.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the --deep sample.")] = 0,
    device: Annotated[str, typer.Option(help="Device of the --deep backbone.")] = "cpu",
    text_column: Annotated[str | None, typer.Option(help="Text column of a table.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a table.")] = None,
    path_column: Annotated[str | None, typer.Option(help="Image path column of a table.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Id column of a table.")] = None,
) -> None:
    """Check a store end to end: complete, unique ids and skip records, rows in source order,
    every chunk's checksum, finite features; --deep re-encodes a sample.

    Example: embedpipe verify cache/reviews.h5 --deep --data builtin:rotten_tomatoes
    """
    from ..errors import ConfigError
    from ..store import FeatureStore

    with FeatureStore(store) as fs:
        fs.verify()
        n, dim = len(fs), fs.dim
    if deep:
        if data is None:
            raise ConfigError("--deep re-encodes items: add --data with the store's data.")
        from ..data import open_source
        from ..encoding.verify import deep_verify

        src = open_source(data, **source_kwargs(text_column, label_column, path_column, id_column))
        check = deep_verify(store, src, sample=sample, seed=seed, device=device)
        typer.echo(
            f"{store}: ok ({n} rows, {dim} dims; {check.n_checked} re-encoded, worst "
            f"1 - cosine {check.worst:.2g} <= {check.tolerance:g})"
        )
        return
    typer.echo(f"{store}: ok ({n} rows, {dim} dims, checksums verified)")


def export_command(
    store: Annotated[Path, typer.Argument(help="A feature store (.h5).")],
    to: Annotated[
        str, typer.Option("--to", help="parquet | npy | csv | hf (a datasets folder).")
    ] = "parquet",
    out: Annotated[
        Path | None,
        typer.Option(help="Where to write (default: next to the store, e.g. x.parquet, x-hf/)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Export a store's rows (source order: id, position, label, content, kept columns,
    features) to Parquet, NumPy, CSV or a Hugging Face datasets folder (load_from_disk).

    Example: embedpipe export cache/reviews.h5 --to parquet --out reviews.parquet
    """
    from ..store import export

    target = out if out is not None else store.with_name(store.stem + _SUFFIX.get(to, "." + to))
    path = export(store, target, to, overwrite=overwrite)  # type: ignore[arg-type]
    typer.echo(f"exported {store} -> {path}")


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_command)
    app.command("verify")(verify_command)
    app.command("export")(export_command)
