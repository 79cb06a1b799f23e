"""One encode request: :class:`EncodeOptions`, validated here and only here.

Every way to start an encode (the API, ``embedpipe encode``, a pipeline's encode stage,
fine-tune activation caching, the workers of a sharded encode) builds one of these and calls
:func:`embedpipe.encoding.encode`. Each option is declared once, as a field of
:class:`EncodeOptions` made by :func:`option`: its default, its one check, its help text, and
whether it is a pipeline parameter (and a run-only one, left out of the stage key) or a CLI flag.
The pipeline's ``EncodeParams`` and the flags of ``embedpipe encode`` are derived from these
fields, so a new option is one field and its check. This module imports no torch (pipeline
commands import it to validate files).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import Arg, ConfigError

OnError = Literal["raise", "skip"]
Dtype = Literal["float32", "float16"]
Compile = Literal["off", "on", "auto"]

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
ON_ERROR: tuple[str, ...] = ("raise", "skip")
DTYPES: tuple[str, ...] = ("float32", "float16")
COMPILE: tuple[str, ...] = ("off", "on", "auto")
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _choice(name: str, allowed: tuple[str, ...]) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v not in allowed:
            raise ConfigError(Arg(name, v), f"; use one of {', '.join(map(repr, allowed))}.")
        return v

    return check


def _int(name: str, minimum: int, optional: bool) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v is None and optional:
            return None
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise ConfigError(Arg(name, v), f"; it must be {what}{' or None' if optional else ''}.")
        return int(v)

    return check


def _bool(name: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if not isinstance(v, bool):
            raise ConfigError(Arg(name, v), "; use True or False.")
        return v

    return check


def _device(name: str, optional: bool) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if v is None and optional:
            return None
        text = str(v) if type(v).__name__ == "device" else v  # a torch.device
        if not isinstance(text, str) or not _DEVICE.match(text):
            raise ConfigError(
                Arg(name, v),
                "; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
                + (" (or None)." if optional else "."),
            )
        return text

    return check


def _seconds(name: str) -> Callable[[Any], Any]:
    def check(v: Any) -> Any:
        if isinstance(v, bool) or not isinstance(v, int | float) or not v >= 0:
            raise ConfigError(Arg(name, v), "; give a number of seconds >= 0 (0: off).")
        return float(v)

    return check


def _compile(v: Any) -> Any:
    if v is True:
        return "on"
    if v is False or v is None:
        return "off"
    return _choice("compile", COMPILE)(v)


def _runtime(v: Any) -> Any:
    from ..backbones.runtimes import runtime_names

    names = runtime_names()
    if v not in names:
        raise ConfigError(Arg("runtime", v), f"; use one of {', '.join(map(repr, names))}.")
    return v


def _cosine(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float) or not 0.0 < float(v) <= 1.0:
        raise ConfigError(
            Arg("runtime_min_cosine", v), "; it must be a number in (0, 1], e.g. 0.999."
        )
    return float(v)


def _paths(v: Any) -> tuple[Path, ...]:
    if v is None:
        return ()
    if isinstance(v, str | Path):
        v = [v]
    if not isinstance(v, Sequence) or not all(isinstance(p, str | Path) for p in v):
        raise ConfigError(Arg("reuse_from", v), "; give a list of store paths.")
    return tuple(Path(p) for p in v)


def option(
    default: Any,
    check: Callable[[Any], Any],
    help: str,
    *,
    pipeline: bool = False,
    run_only: bool = False,
    flag: str | None = "",
) -> Any:
    """Declare one encode option (a field of :class:`EncodeOptions`).

    Parameters
    ----------
    default
        Its default value.
    check
        ``value -> normalised value``, raising a one-line :class:`~embedpipe.errors.ConfigError`.
    help
        One line for ``--help`` and the pipeline parameter's description.
    pipeline
        Also a parameter of pipeline ``encode`` stages; ``run_only``: it changes how the stage
        runs, never its features, so it stays out of the stage key.
    flag
        The CLI flag: ``""`` derives ``--name-with-dashes`` (``--name/--no-name`` for a
        boolean that defaults to True), ``None`` keeps it off the CLI.
    """
    meta = {"check": check, "help": help, "pipeline": pipeline, "run_only": run_only}
    meta["flag"] = flag
    return field(default=default, metadata=meta)


def check_option(name: str, value: Any) -> Any:
    """Validate one encode option; returns its normalised value.

    Examples
    --------
    >>> check_option("compile", True)
    'on'
    >>> check_option("batch_size", 0)
    Traceback (most recent call last):
    ...
    embedpipe.errors.ConfigError: batch_size=0; it must be a positive integer.
    """
    return CHECKS[name](value)


def check_sharding(n_shards: int | None, shard_size: int | None) -> None:
    """``n_shards`` and ``shard_size`` are two ways to say the same thing: at most one."""
    if n_shards is not None and shard_size is not None:
        raise ConfigError(f"give n_shards ({n_shards}) or shard_size ({shard_size}), not both.")


@dataclass(frozen=True)
class EncodeOptions:
    """How to encode: everything of an encode request but the data, backbone and store.

    Parameters
    ----------
    batch_size
        Items per forward pass.
    num_workers
        DataLoader worker processes for decoding and tokenising (``None``: one per core up
        to 8 for images; for text, in-process beside a CPU model, up to 4 tokenising ahead
        beside a GPU); in a sharded encode, per executor worker.
    device
        ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    precision
        ``"auto"`` (AMP on CUDA; bf16 on CPUs with native bf16 where it measured faster),
        ``"fp32"``, ``"bf16"``, ``"fp16"``. An Encoder passed in keeps the device / precision
        it was loaded with where these are ``"auto"``.
    on_error
        ``"raise"``: a bad item stops the encode naming it (batches before it are kept);
        ``"skip"``: it is logged, counted and recorded in the store's errors.
    dtype
        Feature dtype on disk (``"float16"`` halves the size).
    overwrite
        Replace an existing store instead of resuming it.
    reuse_from
        Earlier stores of the same backbone whose features are copied by content hash.
    progress
        Show a progress bar with items/s.
    allow_empty
        Encode an empty dataset into an empty store instead of raising.
    wait
        Wait for another writer of the same store to finish (``False``: fail at once).
    allow_mixed_precision
        Resume / reuse stores encoded at another precision.
    compile
        ``"off"`` (default), ``"on"`` (``torch.compile`` the model) or ``"auto"``: compile
        when the dataset is large enough to repay the compile time and a calibration batch
        measures faster compiled.
    runtime
        Where the forward runs: ``"torch"`` (default), ``"openvino"``, ``"onnxruntime"``, or
        ``"auto"``: the fastest installed runtime whose features pass the fidelity check,
        measured on the first batch (torch on a GPU). An Encoder passed in keeps its own
        runtime when this is ``"torch"``. The store records the runtime, its version and the
        measured fidelity; a resume or reuse across runtimes is refused like one across
        precisions (``allow_mixed_precision``).
    runtime_min_cosine
        The fidelity threshold: the min cosine of the first batch's features to torch
        float32 below which a runtime is refused (an explicit one with an error, ``"auto"``
        falls back to torch).
    decode_device
        ``None`` (default): images are decoded with PIL in the DataLoader workers. ``"cuda"``
        / ``"cuda:N"``: JPEG files are read in the workers and decoded in batches with
        ``torchvision.io.decode_jpeg`` on that device (for when CPU decoding is the limit);
        ``"cpu"`` does the same batched decoding on the CPU.
    n_shards, shard_size
        A sharded encode's split (see :func:`embedpipe.encoding.encode_sharded`); at most one.
    commit_interval
        Seconds over which encoded batches are grouped into one append and commit (``0``:
        off, each batch is committed as soon as it is encoded). Fewer, larger commits cost
        less; a kill -9 loses at most this many seconds of work (a resume re-encodes it).

    Examples
    --------
    >>> opts = EncodeOptions(batch_size=32)
    >>> opts.replace(precision="fp32").precision
    'fp32'
    >>> EncodeOptions.from_kwargs(batch_sise=8)
    Traceback (most recent call last):
    ...
    embedpipe.errors.ConfigError: unknown encode option 'batch_sise'; did you mean 'batch_size'?
    """

    batch_size: int = option(
        64,
        _int("batch_size", 1, optional=False),
        "Items per forward pass.",
        pipeline=True,
        run_only=True,
    )
    num_workers: int | None = option(
        None,
        _int("num_workers", 0, optional=True),
        "DataLoader decoding workers (default: auto); with --executor, per executor worker.",
        pipeline=True,
        run_only=True,
        flag="--workers",
    )
    device: str = option(
        "auto",
        _device("device", optional=False),
        "auto, cpu, cuda, cuda:N.",
        pipeline=True,
        run_only=True,
    )
    precision: str = option(
        "auto",
        _choice("precision", PRECISIONS),
        "auto (default), fp32, bf16 or fp16.",
        pipeline=True,
    )
    on_error: OnError = option(
        "raise",
        _choice("on_error", ON_ERROR),
        "raise: stop at a bad item; skip: log, count and record it.",
        pipeline=True,
    )
    dtype: Dtype = option(
        "float32",
        _choice("dtype", DTYPES),
        "Feature dtype on disk: float32 or float16.",
        pipeline=True,
    )
    overwrite: bool = option(
        False, _bool("overwrite"), "Replace an existing store instead of resuming it."
    )
    reuse_from: tuple[Path, ...] = option(
        (), _paths, "Earlier stores whose features may be copied by content hash."
    )
    progress: bool = option(True, _bool("progress"), "Show a progress bar.", flag=None)
    allow_empty: bool = option(
        False, _bool("allow_empty"), "Write an empty store for an empty dataset."
    )
    wait: bool = option(
        True,
        _bool("wait"),
        "Wait for another encode writing the same store (--no-wait: fail at once).",
    )
    allow_mixed_precision: bool = option(
        False,
        _bool("allow_mixed_precision"),
        "Resume or reuse stores encoded at another precision.",
    )
    compile: Compile = option(
        "off",
        _compile,
        "torch.compile the model: off, on, or auto (only where it measures faster and the "
        "dataset is large enough to repay the compile).",
        pipeline=True,
        run_only=True,
    )
    runtime: str = option(
        "torch",
        _runtime,
        "Where the forward runs: torch, openvino, onnxruntime, or auto (the fastest installed "
        "runtime whose first batch keeps the fidelity threshold to torch fp32).",
        pipeline=True,
    )
    runtime_min_cosine: float = option(
        0.999,
        _cosine,
        "Fidelity threshold of a runtime other than torch (min cosine to torch fp32).",
        pipeline=True,
    )
    decode_device: str | None = option(
        None,
        _device("decode_device", optional=True),
        "Decode JPEG images in batches on this device (cuda, cuda:N) instead of with PIL in "
        "the loader workers.",
        pipeline=True,
        run_only=True,
    )
    n_shards: int | None = option(
        None,
        _int("n_shards", 1, optional=True),
        "With an executor: split into this many shards.",
        pipeline=True,
        run_only=True,
    )
    shard_size: int | None = option(
        None,
        _int("shard_size", 1, optional=True),
        "With an executor: items per shard (default 8192; a fixed size keeps the early "
        "shards when the dataset grows).",
        pipeline=True,
        run_only=True,
    )
    commit_interval: float = option(
        0.0,
        _seconds("commit_interval"),
        "Group the store's commits: append and commit encoded batches together at most every "
        "this many seconds (0, the default: each batch as soon as it is encoded). A kill "
        "loses at most this much work.",
        pipeline=True,
        run_only=True,
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, f.metadata["check"](getattr(self, f.name)))
        check_sharding(self.n_shards, self.shard_size)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> EncodeOptions:
        """Options from keyword arguments; an unknown name is a one-line error."""
        return cls().replace(**kwargs)

    @classmethod
    def of(
        cls, options: EncodeOptions | Mapping[str, Any] | None = None, **overrides: Any
    ) -> EncodeOptions:
        """``options`` (options, a mapping or ``None``) with ``overrides`` on top."""
        if options is None:
            base = cls()
        elif isinstance(options, EncodeOptions):
            base = options
        elif isinstance(options, Mapping):
            base = cls().replace(**options)
        else:
            raise ConfigError(
                f"options={options!r}; give an EncodeOptions, a mapping of its fields or None."
            )
        return base.replace(**overrides) if overrides else base

    def replace(self, **changes: Any) -> EncodeOptions:
        """A copy with ``changes`` (validated)."""
        names = [f.name for f in dataclasses.fields(self)]
        for k in changes:
            if k not in names:
                from ..registry import did_you_mean

                hint = did_you_mean(k, names) or f"; known: {', '.join(names)}."
                raise ConfigError(f"unknown encode option {k!r}{hint}")
        return dataclasses.replace(self, **changes)

    @property
    def sharded(self) -> bool:
        """Whether the options say how to shard."""
        return self.n_shards is not None or self.shard_size is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options (paths as strings)."""
        d = dataclasses.asdict(self)
        d["reuse_from"] = [str(p) for p in self.reuse_from]
        return d


#: The one check of each option (from its :func:`option` declaration).
CHECKS: dict[str, Callable[[Any], Any]] = {
    f.name: f.metadata["check"] for f in dataclasses.fields(EncodeOptions)
}


def option_fields(where: Literal["pipeline", "cli"]) -> list[dataclasses.Field[Any]]:
    """The option fields a pipeline stage or the CLI exposes, in declaration order.

    Examples
    --------
    >>> [f.name for f in option_fields("pipeline")][:3]
    ['batch_size', 'num_workers', 'device']
    >>> "progress" in [f.name for f in option_fields("cli")]
    False
    """
    fields = dataclasses.fields(EncodeOptions)
    if where == "pipeline":
        return [f for f in fields if f.metadata["pipeline"]]
    return [f for f in fields if f.metadata["flag"] is not None]
