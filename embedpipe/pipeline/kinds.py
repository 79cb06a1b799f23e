"""Stage kinds: one registry (:data:`STAGE_KINDS`), each kind carrying its own hooks.

A stage kind is one module in :mod:`embedpipe.pipeline.stages` (or a plugin registered through
the ``embedpipe.stages`` entry-point group) that decorates its run function with
:func:`register_stage_kind`, giving its parameters model, input rules, datasets, key parts and hooks
(``check``, ``describe``, ``after_run``, ``evaluate_entry``...). Generic code (spec, keys,
runner, dag, status) reads these hooks and never branches on a kind's name.

Stage modules stay light to import (their heavy imports happen inside the run functions), so a
fully cached run never imports torch or scikit-learn. Bump a kind's ``version`` whenever its
outputs change for the same parameters: every cached entry of that kind (and everything
downstream) becomes stale.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ..registry import Registry

if TYPE_CHECKING:
    from .context import StageContext


class Params(BaseModel):
    """Base of every kind's parameters: unknown keys are errors, values are frozen."""

    # defer_build: a kind's schema is built when a pipeline first uses it (cheap CLI start-up)
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    #: Parameters that change how a stage runs but not what it produces (left out of the key).
    run_only: ClassVar[tuple[str, ...]] = ()

    def key_params(self) -> dict[str, Any]:
        """The canonical parameters that go into the stage key (defaults filled in)."""
        return self.model_dump(mode="json", exclude=set(self.run_only))


class _EncodeStageParams(Params):
    """The parameters of an ``encode`` stage that are not encode options."""

    backbone: str = Field(
        description="Registry name: minilm, torchvision:mobilenet_v2, hf-text:PATH..."
    )
    weights: str | None = Field(
        None, description="Weights enum or local file; 'none' for random init."
    )
    layer: str | None = None
    pooling: str | None = None
    options: dict[str, Any] = Field(
        default_factory=dict, description="Other load_backbone options."
    )

    @field_validator("*")
    @classmethod
    def _encode_option(cls, v: Any, info: ValidationInfo) -> Any:
        from ..encoding.options import CHECKS, check_sharding
        from ..errors import ConfigError

        name = str(info.field_name)
        if name not in CHECKS:
            return v
        try:
            v = CHECKS[name](v)
            if name == "shard_size":
                check_sharding(info.data.get("n_shards"), v)
        except ConfigError as e:
            raise ValueError(str(e)) from None
        return v

    @property
    def sharded(self) -> bool:
        """Whether the stage says how to shard (used when the run has an executor)."""
        return getattr(self, "n_shards", None) is not None or (
            getattr(self, "shard_size", None) is not None
        )

    def encode_options(self, **extra: Any) -> Any:
        """The :class:`~embedpipe.encoding.EncodeOptions` of the stage's encode, with ``extra``
        (``progress``, ``reuse_from``...) on top."""
        from ..encoding.options import EncodeOptions, option_fields

        mine = {f.name: getattr(self, f.name) for f in option_fields("pipeline")}
        return EncodeOptions(**mine).replace(**extra)


def _encode_params() -> type[_EncodeStageParams]:
    """``EncodeParams``: the stage's own parameters plus every encode option declared for
    pipelines (:func:`embedpipe.encoding.options.option`), with its default and help."""
    from typing import Literal, get_origin, get_type_hints

    from pydantic import create_model

    from ..encoding.options import EncodeOptions, option_fields  # imports no torch

    hints = get_type_hints(EncodeOptions)

    def annotation(name: str) -> Any:  # a closed choice is checked by the option's own check
        return str if get_origin(hints[name]) is Literal else hints[name]

    fields: dict[str, Any] = {
        f.name: (annotation(f.name), Field(f.default, description=f.metadata["help"]))
        for f in option_fields("pipeline")
    }
    model = create_model(  # type: ignore[call-overload]
        "EncodeParams",
        __base__=_EncodeStageParams,
        __doc__=(
            "``encode``: run a frozen backbone over a dataset into a feature store. Its encode "
            "options (precision, dtype, on_error, batch_size...) are derived from "
            "EncodeOptions: the same defaults, the same checks, run when the file is loaded."
        ),
        __module__=__name__,
        **fields,
    )
    model.run_only = tuple(f.name for f in option_fields("pipeline") if f.metadata["run_only"])
    return model  # type: ignore[no-any-return]


EncodeParams = _encode_params()


@dataclass(frozen=True)
class Role:
    """One named input of a stage: which kinds it accepts, one stage or a list, required or not.

    ``kinds`` names kinds, or what kinds *provide* (see :attr:`KindInfo.provides`): a plugin
    kind that provides ``"train"`` is accepted wherever a train stage is.
    """

    kinds: tuple[str, ...]
    many: bool = False
    required: bool = True

    def accepts(self, info: KindInfo) -> bool:
        """Whether a stage of kind ``info`` may fill this role."""
        return info.name in self.kinds or any(p in self.kinds for p in info.provides)


RunFn = Callable[["StageContext"], dict[str, Any]]


@dataclass(frozen=True)
class KindInfo:
    """A stage kind and its hooks (everything generic code needs to know about it).

    Attributes
    ----------
    name, version
        The kind's name in pipeline files, and the version that enters every key of it.
    params
        Its parameters model (a :class:`Params` subclass, validated when the file is loaded).
    run
        ``run(ctx: StageContext) -> outputs`` builds an entry in ``ctx.out``.
    inputs, datasets
        Input roles (:class:`Role`) and dataset roles (role -> required).
    path_params
        Parameters that may name local files (they enter the key by content).
    names_in_key
        The stage shows its inputs' names, so they are part of its key.
    resumable
        A crashed run's temporary folder is resumed, not wiped.
    loads_models
        The stage loads a model (cost forecasts and docs).
    provides
        Other kinds this kind stands in for as an input (``("train",)``).
    entry_dataset
        The dataset role recorded with this kind's entries (downstream stages read its items:
        an encode entry knows the dataset it encoded).
    main_output
        The output that ``run --paths`` / ``status --paths`` list for a stage of this kind.
    check
        ``check(stage)`` raises :class:`~embedpipe.errors.ConfigError` for parameters that
        need more than the model's types (a head's options); called before anything runs.
    describe
        ``describe(params) -> str``: the one-line summary ``embedpipe dag`` shows.
    after_run
        ``after_run(entry, manifest, run_dir) -> Path``: a per-run page (reports).
    evaluate_entry
        ``evaluate_entry(entry, test_store, rel, out, test_ids) -> (HeadResult, data)``: how
        an ``evaluate`` stage scores an entry of this kind (kinds that make heads).
    next_steps
        ``next_steps(stage_run, upstream_runs) -> [command, ...]``: the commands to try on
        what the stage made (``run --paths`` and ``make demo`` print them).
    forecast_disk
        ``forecast_disk(params, calibration_outputs, n_items) -> bytes``: the disk a full run
        takes, when the kind knows better than a linear fit of the calibration runs (a store
        preallocates chunks, so small samples all take the same space).
    """

    name: str
    version: int
    params: type[Params]
    run: RunFn
    inputs: dict[str, Role] = field(default_factory=dict)
    datasets: dict[str, bool] = field(default_factory=dict)
    path_params: tuple[str, ...] = ()
    names_in_key: bool = False
    resumable: bool = False
    loads_models: bool = False
    provides: tuple[str, ...] = ()
    entry_dataset: str | None = None
    main_output: str | None = None
    check: Callable[[Any], None] | None = None
    describe: Callable[[Any], str] | None = None
    after_run: Callable[..., Any] | None = None
    evaluate_entry: Callable[..., Any] | None = None
    next_steps: Callable[..., list[str]] | None = None
    forecast_disk: Callable[..., int] | None = None


#: Every stage kind, built-in and plugin (entry-point group ``embedpipe.stages``).
STAGE_KINDS: Registry[KindInfo] = Registry(
    "stage kind", "embedpipe.stages", builtins="embedpipe.pipeline.stages"
)
_ORDER: list[str] = []  # registration order (built-in kinds first), for messages


def register_stage_kind(
    name: str, *, version: int, params: type[Params], overwrite: bool = False, **hooks: Any
) -> Callable[[RunFn], RunFn]:
    """Register the decorated run function as stage kind ``name`` (see :class:`KindInfo`).

    Examples
    --------
    >>> class ShoutParams(Params):
    ...     text: str = "hi"
    >>> @register_stage_kind("shout", version=1, params=ShoutParams, describe=lambda p: p.text)
    ... def run(ctx):
    ...     return {"said": ctx.params.text.upper()}
    >>> kind_info("shout").describe(ShoutParams())
    'hi'
    >>> STAGE_KINDS.unregister("shout")
    """

    def add(fn: RunFn) -> RunFn:
        info = KindInfo(name, version, params, fn, **hooks)
        STAGE_KINDS.register(name, info, overwrite=overwrite)
        if name not in _ORDER:
            _ORDER.append(name)
        return fn

    return add


def kind_names() -> list[str]:
    """Registered kinds: built-in ones in their documented order, then plugins.

    Examples
    --------
    >>> kind_names()[:3]
    ['encode', 'train', 'evaluate']
    """
    STAGE_KINDS.load_plugins()
    known = list(STAGE_KINDS)
    return [n for n in _ORDER if n in known] + [n for n in known if n not in _ORDER]


def kind_info(kind: str) -> KindInfo:
    """The :class:`KindInfo` of ``kind``; unknown kinds raise
    :class:`~embedpipe.errors.NotFoundError` with a suggestion and the known kinds.

    Examples
    --------
    >>> kind_info("train").inputs["train"].kinds
    ('encode',)
    """
    from ..errors import NotFoundError

    STAGE_KINDS.load_plugins()
    if kind in STAGE_KINDS:
        return STAGE_KINDS.get(kind)
    from ..registry import did_you_mean

    known = kind_names()
    hint = did_you_mean(kind, known) or ";"
    raise NotFoundError(f"unknown kind {kind!r}{hint} kinds: {', '.join(known)}.")
