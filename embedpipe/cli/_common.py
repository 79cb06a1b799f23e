"""Helpers shared by the CLI modules: source options, logging options, examples in ``--help``,
and the map of the running command's flags that error messages are worded with.

Importing this module imports nothing heavy (no torch, numpy or scikit-learn), so listing
commands and ``--help`` stay fast.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer

# ---- source options ---------------------------------------------------------------------------


def source_kwargs(
    text_column: str | None,
    label_column: str | None,
    path_column: str | None,
    id_column: str | None,
    *,
    image_column: str | None = None,
    keep_columns: str | list[str] | None = None,
) -> dict[str, Any]:
    """The source options of ``open_source`` that were given on the command line.

    ``keep_columns`` may be ``"title,url"`` or a list of such strings (a repeated flag).

    Examples
    --------
    >>> source_kwargs("text", None, None, None, keep_columns=["title,url", "year"])
    {'text_column': 'text', 'keep_columns': ['title', 'url', 'year']}
    """
    kw: dict[str, Any] = {
        "text_column": text_column,
        "label_column": label_column,
        "path_column": path_column,
        "id_column": id_column,
        "image_column": image_column,
    }
    if keep_columns:
        parts = [keep_columns] if isinstance(keep_columns, str) else list(keep_columns)
        kw["keep_columns"] = [c.strip() for p in parts for c in p.split(",") if c.strip()]
    return {k: v for k, v in kw.items() if v is not None}


#: ``--keep-columns`` for commands that open a source (pass it on to :func:`source_kwargs`).
KeepColumnsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--keep-columns",
        help="Table columns kept per row in the store, comma-separated (e.g. title,url).",
    ),
]
#: ``--image-column`` for commands that open a source.
ImageColumnOption = Annotated[
    str | None,
    typer.Option(
        "--image-column",
        help="Column of image bytes (or HF {bytes, path} structs) of a Parquet/Arrow table or "
        "Hugging Face dataset.",
    ),
]

#: ``--allow-incomplete`` for commands that read a store's features (train, evaluate, export,
#: index): an unfinished store (an interrupted encode) is refused without it.
AllowIncompleteOption = Annotated[
    bool,
    typer.Option(
        "--allow-incomplete",
        help="Use the rows of an unfinished store (an interrupted encode) instead of refusing it.",
    ),
]

#: ``-q`` of a command that draws progress bars (it also quiets the log).
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress bars; log warnings and errors only.")
]
#: ``--ray-address`` and ``--executor-workers`` of the commands that run an executor.
RayAddressOption = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Ray cluster to join: auto (started by `ray start` here) or ray://HOST:10001; "
        "default: a private local Ray. Implies --executor ray when no executor is named.",
    ),
]
ExecutorWorkersOption = Annotated[
    int | None,
    typer.Option(
        "--executor-workers",
        min=1,
        help="Executor workers (Ray actors, each loads the model once); default: all that fit.",
    ),
]

# ---- logging and third-party noise ------------------------------------------------------------

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_NOISY_MODULES = r"(transformers|huggingface_hub|datasets|torch|torchvision|timm|faiss|open_clip)"
#: Environment switches that silence third-party progress bars and chatter (unless -vv).
QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
_THIRD_PARTY_LOGGERS = (
    "faiss",
    "transformers",
    "huggingface_hub",
    "datasets",
    "urllib3",
    "filelock",
)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (test captures replace it); leaves
    out the logged summary of a store whose summary the command prints (see
    :func:`prints_summary_of`)."""

    def filter(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        printed = _state.get("printed_summaries", ())
        if getattr(record, "summary_of", None) in printed:
            return False
        return bool(super().filter(record))

    def emit(self, record: logging.LogRecord) -> None:
        """Through ``tqdm.write``: a line logged while a progress bar is drawn gets a line of
        its own (not glued to the bar), and the bar is drawn again below it."""
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


_state: dict[str, Any] = {"verbose": 0, "quiet": False, "log_level": None, "flags": {}}


def log_level(verbose: int = 0, quiet: bool = False, level: str | None = None) -> int:
    """embedpipe's log level: ``--log-level`` wins, then ``-v`` (debug), else WARNING: by
    default a command shows its progress and its one summary, and the details are at ``-v``.

    Examples
    --------
    >>> [logging.getLevelName(log_level(*a)) for a in [(0, False), (0, True), (1, False)]]
    ['WARNING', 'WARNING', 'DEBUG']
    >>> logging.getLevelName(log_level(0, True, "error"))
    'ERROR'
    """
    if level is not None:
        name = level.strip().lower()
        if name not in LOG_LEVELS:
            from ..errors import ConfigError

            raise ConfigError(f"--log-level {level!r}: use one of {', '.join(LOG_LEVELS)}.")
        return int(getattr(logging, name.upper()))
    if quiet:
        return logging.WARNING
    return logging.DEBUG if verbose > 0 else logging.WARNING


def prints_summary_of(path: str | os.PathLike[str]) -> None:
    """The command prints this store's summary line on stdout itself: the engine's log of the
    same line is left off stderr (it would show twice at the default log level)."""
    _state.setdefault("printed_summaries", set()).add(str(path))


def configure_logging(verbose: int = 0, quiet: bool = False, level: str | None = None) -> None:
    """Set up the CLI's logging: one stderr handler, embedpipe at :func:`log_level`, and
    third-party libraries at WARNING with their progress bars off — unless ``-vv``."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _StderrHandler):
            root.removeHandler(h)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    ours = log_level(verbose, quiet, level)
    noisy = verbose < 2
    root.setLevel(logging.WARNING if noisy else logging.DEBUG)
    logging.getLogger("embedpipe").setLevel(ours)
    for name in _THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if noisy else logging.NOTSET)
    if noisy:
        silence_third_party()
    else:
        for key in _state.setdefault("env_set", []):
            os.environ.pop(key, None)
        _state["env_set"] = []


def silence_third_party() -> None:
    """Turn off third-party progress bars, advisory warnings and info chatter.

    Sets environment switches (respecting ones the user set) before the libraries load, and
    calls their own switches when they are already imported.
    """
    for key, value in QUIET_ENV.items():
        if key not in os.environ:
            os.environ[key] = value
            _state.setdefault("env_set", []).append(key)
    for category in (FutureWarning, DeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=category, module=_NOISY_MODULES + r"(\.|$)")
    if "transformers" in sys.modules:
        try:
            from transformers.utils import logging as tlog

            tlog.set_verbosity_warning()  # warnings stay (as for every library); bars go
            tlog.disable_progress_bar()
        except Exception:  # noqa: BLE001 - an odd transformers must not break the CLI
            pass
    if "huggingface_hub" in sys.modules:
        try:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        except Exception:  # noqa: BLE001
            pass
    if "datasets" in sys.modules:
        try:
            sys.modules["datasets"].disable_progress_bars()
        except Exception:  # noqa: BLE001
            pass


@contextlib.contextmanager
def logging_session() -> Iterator[None]:
    """Run one CLI invocation; afterwards put back the log levels, handlers, warning filters
    and environment switches it changed (``main`` may be called in-process, e.g. by tests)."""
    names = ["", "embedpipe", *_THIRD_PARTY_LOGGERS]
    levels = {n: logging.getLogger(n).level for n in names}
    filters = list(warnings.filters)
    _state.update(
        verbose=0, quiet=False, log_level=None, flags={}, env_set=[], printed_summaries=set()
    )
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
        root = logging.getLogger()
        for h in list(root.handlers):
            if isinstance(h, _StderrHandler):
                root.removeHandler(h)
        warnings.filters[:] = filters  # type: ignore[index]
        mutated = getattr(warnings, "_filters_mutated", None)  # invalidate warning caches
        if callable(mutated):
            mutated()
        for key in _state.get("env_set", []):
            os.environ.pop(key, None)
        _state["env_set"] = []


def set_global_logging(verbose: int, quiet: bool, level: str | None) -> None:
    """Record the options given before the command name (``embedpipe -q encode ...``); the
    command applies them with its own (:func:`with_logging_options`)."""
    log_level(verbose, quiet, level)  # a bad --log-level fails here
    _state.update(verbose=verbose, quiet=quiet, log_level=level)


#: ``-v`` / ``--verbose`` (counted), ``-q`` / ``--quiet`` and ``--log-level``: before the command
#: name (the app's callback) and after it (every command, see :func:`with_logging_options`).
VerboseOption = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        help="More log output: -v embedpipe's details, -vv third parties' too.",
    ),
]
QuietLogOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Warnings and errors only (no progress bars).")
]
LogLevelOption = Annotated[
    str | None,
    typer.Option("--log-level", help="embedpipe's log level: " + ", ".join(LOG_LEVELS) + "."),
]
_VERBOSE, _QUIET, _LOG_LEVEL = (
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
    for name, default, annotation in (
        ("verbose", 0, VerboseOption),
        ("quiet", False, QuietLogOption),
        ("log_level", None, LogLevelOption),
    )
)


def with_logging_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command ``-v`` / ``-q`` / ``--log-level`` (those it lacks), applied before it runs.

    A command's own ``quiet`` parameter (no progress bar) keeps its meaning and also makes the
    log quieter. The command being run is remembered for :func:`current_command_flags`.
    """
    if getattr(fn, "__embedpipe_logging__", False):
        return fn
    sig = inspect.signature(fn, eval_str=True)
    have = set(sig.parameters)
    added = [p for p in (_VERBOSE, _QUIET, _LOG_LEVEL) if p.name not in have]

    flags = signature_flags(sig)

    @functools.wraps(fn)
    def command(*args: Any, **kwargs: Any) -> Any:
        local = {p.name: kwargs.pop(p.name) for p in added if p.name in kwargs}
        get = {**kwargs, **local}.get
        _state["flags"] = flags
        configure_logging(
            max(int(get("verbose", 0) or 0), int(_state["verbose"])),
            bool(get("quiet", False)) or bool(_state["quiet"]),
            get("log_level") or _state["log_level"],
        )
        return fn(*args, **kwargs)

    params = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        else p
        for p in sig.parameters.values()
    ]
    command.__signature__ = sig.replace(parameters=[*params, *added])  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in [*params, *added]}
    del command.__wrapped__  # typer must read the new signature, not the wrapped one's
    command.__embedpipe_logging__ = True  # type: ignore[attr-defined]
    return command


# ---- examples in --help ------------------------------------------------------------------------

#: One example per command (shown at the end of its --help). A command whose docstring already
#: holds an "Example" line keeps its own.
EXAMPLES: dict[str, str] = {
    "encode": "embedpipe encode --data reviews.csv --text-column text --label-column label "
    "--backbone minilm --out cache/reviews.h5",
    "inspect": "embedpipe inspect cache/reviews.h5",
    "verify": "embedpipe verify cache/reviews.h5",
    "export": "embedpipe export cache/reviews.h5 --to parquet --out reviews.parquet",
    "backbones": "embedpipe backbones",
    "weights import": "embedpipe weights import --bundled",
    "train": "embedpipe train --store cache/train.h5 --head logreg --out heads/logreg.skops",
    "evaluate": "embedpipe evaluate --store cache/train.h5 --head logreg --head knn --cv 5",
    "predict": "embedpipe predict --model heads/logreg.skops --data new.csv --text-column text",
    "heads": "embedpipe heads",
    "index": "embedpipe index cache/reviews.h5 --out indexes/reviews",
    "search": 'embedpipe search indexes/reviews --query "a slow, tedious film" -k 5',
    "eval-index": "embedpipe eval-index indexes/reviews",
    "serve": "embedpipe serve indexes/reviews --port 8000",
    "run": "embedpipe run pipelines/quickstart.yaml",
    "status": "embedpipe status pipelines/quickstart.yaml",
    "dag": "embedpipe dag pipelines/quickstart.yaml",
    "gc": "embedpipe gc --dry-run",
}


def add_examples(app: typer.Typer, prefix: str = "") -> None:
    """Put each command's example in its help epilog and give it the logging options."""
    for info in app.registered_commands:
        name = info.name or (info.callback.__name__ if info.callback else "")
        full = f"{prefix}{name}"
        doc = (info.help or (info.callback.__doc__ if info.callback else "") or "").lower()
        example = EXAMPLES.get(full)
        if example and "example" not in doc and not info.epilog:
            info.epilog = f"Example: {example}"
        if not info.short_help:
            info.short_help = first_sentence(info.help or (info.callback.__doc__ or ""))
        if info.callback is not None:
            info.callback = with_logging_options(info.callback)
    for group in app.registered_groups:
        if group.typer_instance is not None:
            add_examples(group.typer_instance, f"{prefix}{group.name} ")


def first_sentence(doc: str) -> str:
    """The first sentence of a docstring, in full: a command's line in its group's listing
    (click would cut it with "..." to fit the terminal; this is wrapped instead).

    Examples
    --------
    >>> first_sentence("Run a pipeline: stages in order, recomputing   what changed. More.")
    'Run a pipeline: stages in order, recomputing what changed.'
    """
    para = " ".join(doc.strip().split("\n\n")[0].split())
    m = re.match(r"(.+?\.)(\s|$)", para)
    return m.group(1) if m else para


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def echo_wrapped(text: str, width: int | None = None) -> None:
    """Print ``text`` wrapped to the terminal's width, continuation lines indented by two
    spaces; words (paths) are never broken. In a pipe it stays one line (for scripts)."""
    import shutil
    import textwrap

    if not _isatty(sys.stdout):
        typer.echo(text)
        return

    cols = width or shutil.get_terminal_size((80, 24)).columns
    for line in text.splitlines() or [""]:
        typer.echo(
            textwrap.fill(
                line,
                width=max(cols, 40),
                subsequent_indent="  ",
                break_long_words=False,
                break_on_hyphens=False,
            )
            or line
        )


def echo_field(label: str, value: object, width: int | None = None) -> None:
    """Print ``label  value`` wrapped to the terminal's width (80 columns in a pipe), the
    continuation lines indented under the value: no line is wider than the terminal."""
    import shutil
    import textwrap

    cols = width or shutil.get_terminal_size((80, 24)).columns
    lead = f"{label:<12} "
    text = textwrap.fill(
        str(value),
        width=max(cols, len(lead) + 20),
        initial_indent=lead,
        subsequent_indent=" " * len(lead),
        break_on_hyphens=False,
    )
    typer.echo(text)


def wrap_command(cmd: str, indent: str = "", width: int | None = None) -> str:
    """A shell command to copy, split with `` \\`` continuations so that no line is wider
    than the terminal (80 columns in a pipe); it pastes into a shell unchanged.

    Examples
    --------
    >>> print(wrap_command("embedpipe search cache/index/0123456789/index --query 'a film' -k 5",
    ...                    indent="  ", width=50))
      embedpipe search cache/index/0123456789/index \\
          --query 'a film' -k 5
    """
    import shlex
    import shutil

    cols = width or shutil.get_terminal_size((80, 24)).columns
    try:
        words = [shlex.quote(w) for w in shlex.split(cmd)]
    except ValueError:
        return indent + cmd
    lines: list[str] = []
    line = indent
    for word in words:
        lead = indent if not lines else indent + "    "
        if line.strip() and len(line) + 1 + len(word) + 2 > cols:
            lines.append(line + " \\")
            line = indent + "    " + word
        else:
            line = line + (" " if line.strip() else "") + word if line.strip() else lead + word
    lines.append(line)
    return "\n".join(lines)


# ---- CLI wording of errors ---------------------------------------------------------------------


def signature_flags(sig: inspect.Signature) -> dict[str, str]:
    """``{python name: --flag}`` of a typer command's options (its longest ``--`` form).

    Examples
    --------
    >>> def cmd(on_error: Annotated[str, typer.Option(help="...")] = "raise",
    ...         data: Annotated[str, typer.Option("--data", "-d")] = ""): ...
    >>> signature_flags(inspect.signature(cmd, eval_str=True))
    {'on_error': '--on-error', 'data': '--data'}
    """
    from typer.models import OptionInfo

    out: dict[str, str] = {}
    for p in sig.parameters.values():
        info = next(
            (m for m in getattr(p.annotation, "__metadata__", ()) if isinstance(m, OptionInfo)),
            None,
        )
        if info is None:
            continue
        decls = [info.default] if isinstance(info.default, str) else []
        decls += list(info.param_decls or ())
        long = [d.split("/")[0] for d in decls if d.startswith("--")]
        out[p.name] = max(long, key=len) if long else "--" + p.name.replace("_", "-")
    return out


def current_command_flags() -> dict[str, str]:
    """The flags of the command being run, ``{python name: --flag}`` (empty before one
    started): :meth:`embedpipe.errors.EmbedpipeError.worded` words an error with them."""
    return dict(_state["flags"])
