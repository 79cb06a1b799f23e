"""The ``embedpipe`` command. Commands only parse arguments and call the Python API."""

from __future__ import annotations

import logging
import sys

import typer

from ..errors import EmbedpipeError
from . import encode_cmd, heads_cmd, index_cmd, pipeline_cmd

app = typer.Typer(
    name="embedpipe",
    help="Transfer learning by feature extraction: encode once, train heads and search fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (encode_cmd, heads_cmd, index_cmd, pipeline_cmd):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: embedpipe errors print one clear line, exit code 2."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("faiss").setLevel(logging.WARNING)
    try:
        app(args=argv, prog_name="embedpipe")
    except EmbedpipeError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except KeyError as e:
        typer.echo(f"error: {e.args[0] if e.args else e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted: committed work is kept; run the same command to resume.", err=True)
        sys.exit(130)
