"""Backbone kinds and presets: the two registries behind :func:`~embedpipe.backbones.load_backbone`.

A *kind* is a family of models addressed as ``prefix:target`` (``torchvision:resnet50``,
``hf-text:<folder>``, ``timm:convnext_tiny``...). Each kind is one module that registers a
:class:`BackboneKind` carrying its own hooks (how to load from a target, how to rebuild from a
stored spec, its example, the fine-tuning split...), so generic code never branches on a kind's
name. Hooks may be callables or lazy ``"module:attribute"`` strings, so listing the kinds
imports no torch. Third-party kinds register through the ``embedpipe.backbones`` entry-point
group.

A *preset* is a short name for a configured kind (``minilm``), with its dimension declared
statically so that listing needs no model.

This module imports neither torch nor any model library.

Examples
--------
>>> kind = BACKBONE_KINDS.get("torchvision")
>>> kind.example
'torchvision:resnet50'
>>> PRESETS.get("minilm").dim
384
>>> BACKBONE_KINDS.get("timn")
Traceback (most recent call last):
...
embedpipe.backbones.kind.UnknownBackboneError: unknown backbone kind 'timn'; did you mean 'timm'? Known: ...
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from embedpipe.errors import ConfigError, NotFoundError
from embedpipe.registry import Registry, did_you_mean

if TYPE_CHECKING:
    from embedpipe.backbones.base import Encoder

Hook = Callable[..., Any] | str


class UnknownBackboneError(NotFoundError, ConfigError):
    """An unknown backbone name, kind or preset (a :class:`NotFoundError` and, as before, a
    :class:`ConfigError`)."""


class _BackboneRegistry(Registry[Any]):
    def get(self, name: str) -> Any:
        try:
            return super().get(name)
        except NotFoundError as e:
            raise UnknownBackboneError(str(e)) from None

    def unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        return f"unknown {self.what} {name!r}{did_you_mean(name, known)} Known: {', '.join(known)}."


def resolve_hook(hook: Hook) -> Callable[..., Any]:
    """A hook as a callable: ``"package.module:function"`` strings are imported on first use.

    Examples
    --------
    >>> resolve_hook("os.path:join")("a", "b")
    'a/b'
    """
    if callable(hook):
        return hook
    module, _, attr = hook.partition(":")
    obj: Any = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj  # type: ignore[no-any-return]


@dataclass(frozen=True)
class BackboneKind:
    """One backbone kind and its hooks.

    Parameters
    ----------
    name
        The prefix of its names (``"timm"`` for ``timm:convnext_tiny``).
    spec_kind
        The ``kind`` written in a :class:`~embedpipe.backbones.BackboneSpec` (stores keep it).
    load
        ``load(target, **kwargs) -> Encoder``. ``kwargs`` holds only what the caller set:
        ``weights``, ``layer``, ``pooling``, ``trust_remote_code`` and the kind's options.
    from_spec
        ``from_spec(spec, **overrides) -> Encoder``: rebuild the encoder a stored spec
        describes.
    placeholder, example, description
        What ``embedpipe backbones`` shows: ``prefix:placeholder``, a working example spec and
        one line.
    options
        The option names :func:`load_backbone` accepts for it besides ``weights``/``layer``/
        ``pooling``/``trust_remote_code``; ``None`` when ``load`` validates its own.
    aliases
        Other prefixes (``hf_text`` for ``hf-text``).
    claims
        ``claims(name) -> target | None``: whether a bare name (no prefix) is this kind's
        (torchvision's model names); ``None`` for kinds that need their prefix.
    bare_names
        ``bare_names() -> list[str]``: the bare names ``claims`` accepts (for messages).
    trunk
        The layout of the model's trunk, for shallow fine-tuning: ``"cnn-blocks"`` (a
        classifier's sequence of blocks) or ``"encoder-layers"`` (a transformer's
        ``encoder.layer`` list), a name that ``embedpipe.heads.finetuning`` knows how to cut;
        ``None`` when the kind cannot be fine-tuned.
    """

    name: str
    spec_kind: str
    load: Hook
    from_spec: Hook
    placeholder: str = "<name>"
    example: str = ""
    description: str = ""
    options: tuple[str, ...] | None = None
    aliases: tuple[str, ...] = ()
    claims: Hook | None = None
    bare_names: Hook | None = None
    trunk: str | None = None

    @property
    def pattern(self) -> str:
        """``"prefix:placeholder"``, e.g. ``"torchvision:<model>"``."""
        return f"{self.name}:{self.placeholder}"

    def hook(self, name: str) -> Callable[..., Any]:
        """The named hook as a callable (imported lazily); a missing hook is a ConfigError."""
        value = getattr(self, name)
        if value is None:
            what = name.replace("_", " ")
            raise ConfigError(f"backbone kind {self.name!r} has no {what} hook")
        return resolve_hook(value)


@dataclass(frozen=True)
class Preset:
    """A named, configured backbone.

    ``loader(**kwargs) -> Encoder`` receives :func:`load_backbone`'s keyword arguments the
    caller set. ``dim`` and ``modality`` are declared, so listing needs no model.
    """

    name: str
    loader: Callable[..., Encoder]
    description: str = ""
    dim: int | None = None
    modality: str | None = None
    target: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


BACKBONE_KINDS: Registry[BackboneKind] = _BackboneRegistry(
    "backbone kind", group="embedpipe.backbones", builtins="embedpipe.backbones.kinds"
)
"""The backbone kinds, by prefix (``"torchvision"``, ``"hf-text"``, ``"timm"``...)."""

PRESETS: Registry[Preset] = _BackboneRegistry(
    "backbone", group=None, builtins="embedpipe.backbones.registry"
)
"""The presets, by name (``"minilm"``). Plugins add theirs on import (group ``embedpipe.backbones``)."""


def register_backbone_kind(kind: BackboneKind, *, overwrite: bool = False) -> BackboneKind:
    """Register a backbone kind under its name and aliases.

    Examples
    --------
    >>> k = register_backbone_kind(BackboneKind("demo", "demo", load="os.path:join",
    ...                                from_spec="os.path:join", example="demo:x"))
    >>> BACKBONE_KINDS.get("demo") is k
    True
    >>> for n in ("demo",): BACKBONE_KINDS.unregister(n)
    """
    if ":" in kind.name or not kind.name:
        raise ConfigError(f"backbone kind name {kind.name!r} must be non-empty without ':'")
    BACKBONE_KINDS.register(kind.name, kind, overwrite=overwrite)
    return kind


def kind_of_prefix(prefix: str) -> BackboneKind | None:
    """The kind a name prefix denotes (``hf_text`` and ``hf-text`` alike), or ``None``."""
    for candidate in (prefix, prefix.replace("_", "-")):
        if candidate in BACKBONE_KINDS:
            return BACKBONE_KINDS.get(candidate)
    for _, kind in BACKBONE_KINDS.items():
        if prefix in kind.aliases:
            return kind
    return None


def kind_of_spec(spec_kind: str) -> BackboneKind:
    """The kind that wrote specs of ``spec_kind`` (``"hf_text"``).

    Raises
    ------
    UnknownBackboneError
        No registered kind writes it (a plugin missing?).
    """
    for _, kind in BACKBONE_KINDS.items():
        if kind.spec_kind == spec_kind:
            return kind
    known = sorted(k.spec_kind for _, k in BACKBONE_KINDS.items())
    raise UnknownBackboneError(
        f"unknown backbone kind {spec_kind!r} in spec{did_you_mean(spec_kind, known)} "
        f"known: {known}; install the plugin that provides it"
    )
