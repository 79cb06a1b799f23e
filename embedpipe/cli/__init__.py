"""The ``embedpipe`` command. Commands only parse arguments and call the Python API.

Importing the CLI imports no torch, numpy or scikit-learn: each command imports what it needs
when it runs, so ``--help``, ``--version`` and the listing commands start fast.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from ..errors import EmbedpipeError, Interrupted, clear_stop, request_stop
from . import curate_cmd, encode_cmd, heads_cmd, index_cmd, pipeline_cmd, store_cmd
from ._common import (
    LogLevelOption,
    QuietLogOption,
    VerboseOption,
    add_examples,
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
    # click's plain help: wrapped to the terminal (or 80 columns in a pipe), never cut with
    # "…" as rich's option table does in a narrow column
    rich_markup_mode=None,
    epilog="Example: embedpipe examples && embedpipe run pipelines/quickstart.yaml  "
    "(`embedpipe examples` writes the example pipelines; each command's --help shows one)",
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
    verbose: VerboseOption = 0,
    quiet: QuietLogOption = False,
    log_level: LogLevelOption = None,
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
    with logging_session(), _stop_signals():
        try:
            app(args=argv, prog_name="embedpipe")
        except EmbedpipeError as e:
            typer.echo(f"error: {e.worded(current_command_flags())}", err=True)
            sys.exit(2)
        except (KeyboardInterrupt, Interrupted) as e:
            signum = e.signum if isinstance(e, Interrupted) else signal.SIGINT
            typer.echo(
                f"interrupted ({signal.Signals(signum).name}): every committed row and finished "
                "stage is kept; run the same command to resume (a .lock file left beside a "
                "store is free and the next run takes it over).",
                err=True,
            )
            sys.exit(128 + int(signum))


@contextlib.contextmanager
def _stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`Interrupted` while a command runs (the encode commits
    what it finished, then :func:`main` says what was kept); the old handlers come back after."""

    def stop(signum: int, frame: object) -> None:
        request_stop(signum)
        raise Interrupted(signum)

    def unraisable(u: Any) -> None:
        # The handler's exception landed in a finaliser or weak-reference callback, where
        # Python only prints it: the stop request it recorded is honoured at the next check.
        if not isinstance(u.exc_value, Interrupted):
            before_hook(u)

    old = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, stop)
    except ValueError:  # not the main thread: leave the signals alone
        pass
    before_hook = sys.unraisablehook
    if old:
        sys.unraisablehook = unraisable
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        sys.unraisablehook = before_hook
        clear_stop()
