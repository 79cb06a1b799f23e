"""The ``embedpipe`` command. Commands only parse arguments and call the Python API.

Importing the CLI imports no torch, numpy or scikit-learn: each command imports what it needs
when it runs, so ``--help``, ``--version`` and the listing commands start fast.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from ..errors import EmbedpipeError
from . import curate_cmd, encode_cmd, heads_cmd, index_cmd, pipeline_cmd, store_cmd
from ._common import (
    LOG_LEVELS,
    add_examples,
    cli_message,
    current_command_flags,
    logging_session,
    set_global_logging,
)

app = typer.Typer(
    name="embedpipe",
    help="Transfer learning by feature extraction: encode once, train heads and search fast.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    epilog="Example: embedpipe run pipelines/quickstart.yaml  (each command's --help shows one)",
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"embedpipe {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    verbose: Annotated[
        int,
        typer.Option(
            "--verbose", "-v", count=True, help="More log output (-v debug, -vv third-party too)."
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="embedpipe's log level: " + ", ".join(LOG_LEVELS) + "."),
    ] = None,
) -> None:
    """Transfer learning by feature extraction: encode once, train heads and search fast.

    -v / -q / --log-level work before the command name and after it.
    """
    set_global_logging(verbose, quiet, log_level)


for _module in (encode_cmd, heads_cmd, index_cmd, pipeline_cmd, store_cmd, curate_cmd):
    _module.register(app)
add_examples(app)  # an example in each --help, and -v / -q / --log-level on every command


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: embedpipe errors print one clear line (with CLI
    flags, not Python argument names) and exit with code 2. Other exceptions are bugs and keep
    their traceback."""
    with logging_session():
        try:
            app(args=argv, prog_name="embedpipe")
        except EmbedpipeError as e:
            typer.echo(f"error: {cli_message(str(e), current_command_flags())}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            typer.echo(
                "interrupted: committed work is kept; run the same command to resume.", err=True
            )
            sys.exit(130)
