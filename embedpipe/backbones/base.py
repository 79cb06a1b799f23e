"""The Encoder interface every backbone adapter implements, and its spec dataclass."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from embedpipe.errors import ConfigError

if TYPE_CHECKING:
    import torch

Modality = Literal["image", "text"]


@dataclass(frozen=True)
class BackboneSpec:
    """What a backbone is: written verbatim into every feature store's provenance.

    Parameters
    ----------
    kind
        Adapter family: ``"torchvision"``, ``"hf_vision"``, ``"hf_text"`` or ``"word_vectors"``.
    name
        Model name (torchvision), hub id or local folder (Hugging Face), vectors file path.
    weights
        Weights source: an enum member name (``"DEFAULT"``, ``"IMAGENET1K_V1"``), a local file
        path, ``None`` for random initialisation. For HF models: the revision or ``None``.
    weights_id
        Identity of the weights actually loaded (enum full name, or sha256 of the file / of the
        model's state dict). This goes into the fingerprint.
    layer
        Feature layer; ``None`` means the default (penultimate layer / last hidden state).
    pooling
        ``"avg"``/``"max"`` (over a feature map), ``"cls"``/``"mean"`` (over tokens),
        ``"pooler"`` (a Hugging Face model's pooler), ``"model"`` (the model's own pooling,
        at a torchvision penultimate layer), ``"idf_mean"`` (word vectors), ``"none"``.
    modality
        ``"image"`` or ``"text"``.
    preprocessing
        Everything that changes the model's input: mean, std, resize, crop, interpolation,
        max_length, lowercase, normalize...
    options
        Other settings that change the output (e.g. ``normalize`` for L2 normalisation,
        ``idf_id`` for IDF-weighted word vectors).
    files
        Local paths of auxiliary files the adapter reads to rebuild the encoder (e.g. a saved
        IDF table). Not part of the fingerprint: their content hashes are in ``options``.
    name_in_fingerprint
        Whether ``name`` is part of the fingerprint: set by kinds whose ``weights_id`` does not
        name the architecture (torchvision enum weights). It travels in the spec, so a stored
        spec's fingerprint never depends on which kinds are registered.
    """

    kind: str
    name: str
    weights: str | None = None
    weights_id: str | None = None
    layer: str | None = None
    pooling: str = "avg"
    modality: Modality = "image"
    preprocessing: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    name_in_fingerprint: bool = False

    def __post_init__(self) -> None:
        # Store dicts in their JSON form (tuples → lists...), so a spec read back from a
        # store's provenance compares equal to the one that wrote it.
        for name in ("preprocessing", "options", "files"):
            value = getattr(self, name)
            object.__setattr__(self, name, json.loads(json.dumps(value, default=str)))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if not d["name_in_fingerprint"]:  # the usual case: written only where set
            del d["name_in_fingerprint"]
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackboneSpec:
        """Rebuild a spec from :meth:`to_dict` output (e.g. a store's provenance).

        Raises
        ------
        ConfigError
            If ``d`` lacks ``kind``/``name`` or has keys a spec does not know.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        missing = [k for k in ("kind", "name") if k not in d]
        if unknown or missing:
            raise ConfigError(
                f"not a backbone spec: unknown keys {unknown}, missing keys {missing}; "
                f"a spec has the keys {sorted(known)}"
            )
        if "name_in_fingerprint" not in d and d.get("kind") == "torchvision":
            # specs written before the flag travelled in them: torchvision's kind set it
            d = {**d, "name_in_fingerprint": True}
        return cls(**d)

    def fingerprint(self) -> str:
        """A short stable hash of everything that determines the features.

        The local path of a weights file or model folder is *not* part of it: ``weights_id``
        (a content hash) is, so moving a file keeps the fingerprint. The name is, for kinds
        whose ``weights_id`` does not identify the architecture (the spec's own
        ``name_in_fingerprint``).

        Examples
        --------
        >>> a = BackboneSpec("torchvision", "resnet18", weights_id="x", name_in_fingerprint=True)
        >>> a.fingerprint() != BackboneSpec.from_dict({**a.to_dict(), "name": "resnet34"}).fingerprint()
        True
        """
        d = self.to_dict()
        payload = {
            "kind": d["kind"],
            "name": d["name"] if self.name_in_fingerprint else None,
            "weights_id": d["weights_id"],
            "layer": d["layer"],
            "pooling": d["pooling"],
            "modality": d["modality"],
            "preprocessing": d["preprocessing"],
            "options": d["options"],
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.blake2b(blob, digest_size=12).hexdigest()


def reload(
    load: Callable[..., Any],
    spec: BackboneSpec,
    overrides: Mapping[str, Any],
    *fields: str,
    **recorded: Any,
) -> Any:
    """``load(name, **recorded)``, plus the spec's own ``fields`` (``"weights"``,
    ``"layer"``, ``"pooling"``...), with ``overrides`` (a moved ``name`` or ``weights``...)
    winning: how a kind's ``from_spec`` rebuilds the encoder a spec describes."""
    kw = {**{f: getattr(spec, f) for f in fields}, **recorded, **overrides}
    return load(kw.pop("name", spec.name), **kw)


@runtime_checkable
class Encoder(Protocol):
    """A frozen backbone ready to encode: what the engine, queries, predict and the server
    may rely on, and nothing else (no ``hasattr`` probing).

    - ``modality``: ``"image"`` or ``"text"``; a text encoder is also a :class:`TextEncoder`.
    - ``preprocess`` runs in DataLoader worker processes: it turns one raw item (a PIL RGB
      image, or a ``str``) into a model-ready sample (a CHW float tensor; for text, the
      checked text, or its token ids). A bad item raises here, so it is skipped alone.
    - ``collate`` turns a list of samples into a batch. Both are small picklable callables
      that hold no model, so sending them to workers is cheap.
    - ``encode`` moves the batch to the device (non-blocking), runs under
      ``torch.inference_mode`` and autocast at the configured precision, and returns a
      float32 ``[B, dim]`` CPU tensor.
    - ``to(device, precision)`` says where and how ``encode`` computes (``device`` and
      ``precision`` hold the result); precision is not part of the fingerprint (the engine
      records it in the store's provenance).
    - optional, ``encode_on_device(batch)``: ``encode`` without the copy back (features left
      on the device, maybe still computing), so a CUDA encode overlaps batches (see
      :func:`device_forward`).

    Every embedpipe encoder also has ``space`` (a string naming its embedding space; by
    default its fingerprint, shared by both towers of a dual encoder) and
    ``encoder_for(modality)`` (the encoder of that modality in the same space: itself, or a
    dual encoder's other tower). They are not part of this runtime-checked protocol, so
    encoders written before them still work: generic code calls :func:`space_of` and
    :func:`encoder_for`, which supply the defaults.
    """

    spec: BackboneSpec
    dim: int
    modality: Modality
    device: torch.device
    precision: str

    @property
    def fingerprint(self) -> str: ...

    def preprocess(self, item: Any) -> Any: ...

    def collate(self, samples: list[Any]) -> Any: ...

    def encode(self, batch: Any) -> torch.Tensor: ...

    def to(self, device: str | torch.device, precision: str = "fp32") -> Encoder:
        """Move to ``device`` and set the compute precision (``"auto"``, ``"fp32"``,
        ``"bf16"``, ``"fp16"``)."""
        ...


@runtime_checkable
class TextEncoder(Encoder, Protocol):
    """An :class:`Encoder` of text: the one text path (check → tokenise → sort → batch) that
    stores, queries, predict and the server share (see :mod:`embedpipe.backbones.text`).

    - ``tokenize(texts)``: checked texts (``preprocess`` output) → one token array per text,
      its last axis the token count the encode sorts by; every text is tokenised once.
    - ``collate_tokens(tokens)``: token arrays → a padded model batch
      (``collate == collate_tokens ∘ tokenize``).
    - ``lengths(texts)``: each raw text's token count (after truncation).
    """

    def tokenize(self, texts: list[Any]) -> list[Any]: ...

    def collate_tokens(self, tokens: list[Any]) -> Any: ...

    def lengths(self, texts: list[str]) -> list[int]: ...


def as_text_encoder(encoder: Encoder) -> TextEncoder:
    """``encoder`` as a :class:`TextEncoder`: itself, or for a text encoder without
    ``tokenize`` (e.g. a plugin's) a :class:`SamplesAsTokens` view; another modality is a
    :class:`ConfigError`.

    Examples
    --------
    >>> from embedpipe.backbones import load_backbone
    >>> as_text_encoder(load_backbone("resnet18", weights=None, crop_size=32, resize_size=32))
    Traceback (most recent call last):
    ...
    embedpipe.errors.ConfigError: backbone 'resnet18' encodes images, not texts
    """
    if encoder.modality != "text":
        raise ConfigError(f"backbone {encoder.spec.name!r} encodes {encoder.modality}s, not texts")
    return encoder if isinstance(encoder, TextEncoder) else SamplesAsTokens(encoder)


class SamplesAsTokens:
    """The text path of a text :class:`Encoder` that does not tokenise (a plugin's): its
    preprocessed samples are its tokens, sorted by their length (``len``) and batched by its
    own ``collate``. Every other attribute is the encoder's."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.tokenize = list  # picklable pieces only: DataLoader workers receive them
        self.collate_tokens = encoder.collate

    def lengths(self, texts: list[str]) -> list[int]:
        return [len(self.encoder.preprocess(t)) for t in texts]

    def __getattr__(self, name: str) -> Any:
        if name == "encoder":
            raise AttributeError(name)
        return getattr(self.encoder, name)


def device_forward(encoder: Any) -> Callable[[Any], torch.Tensor] | None:
    """``encoder.encode_on_device`` where the encoder has one (the optional part of
    :class:`Encoder`), else ``None``."""
    return getattr(encoder, "encode_on_device", None)


def space_of(encoder: Any) -> str:
    """The embedding space of ``encoder``: its ``space`` attribute, else its fingerprint.

    Two encoders with the same space produce comparable vectors (an index accepts a query
    whose encoder's space equals the index's).

    Examples
    --------
    >>> from embedpipe.backbones import load_backbone
    >>> enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    >>> space_of(enc) == enc.fingerprint
    True
    """
    space = getattr(encoder, "space", None)
    return str(space) if space else str(encoder.fingerprint)


def encoder_for(encoder: Any, modality: str) -> Any:
    """The encoder of ``modality`` in ``encoder``'s space: ``encoder.encoder_for(modality)``
    when it has one, else ``encoder`` itself if its modality matches.

    Raises
    ------
    ConfigError
        The backbone encodes another modality only (the message says which).

    Examples
    --------
    >>> from embedpipe.backbones import load_backbone
    >>> enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    >>> encoder_for(enc, "image") is enc
    True
    >>> encoder_for(enc, "text")
    Traceback (most recent call last):
    ...
    embedpipe.errors.ConfigError: backbone 'resnet18' encodes images only, not text; use a dual encoder (clip:<hub id or folder>) for text queries over images
    """
    method = getattr(encoder, "encoder_for", None)
    if callable(method):
        return method(modality)
    return default_encoder_for(encoder, modality)


def default_encoder_for(encoder: Any, modality: str) -> Any:
    """``encoder`` if it encodes ``modality``, else a :class:`ConfigError` naming what it
    encodes (the single-tower rule of :func:`encoder_for`)."""
    if modality not in ("image", "text"):
        raise ConfigError(f"unknown modality {modality!r}; use 'image' or 'text'")
    if encoder.modality == modality:
        return encoder
    return _refuse(encoder.spec.name, encoder.modality, modality)


def _refuse(name: str, has: str, wanted: str) -> Any:
    other = "text queries over images" if wanted == "text" else "image queries over texts"
    raise ConfigError(
        f"backbone {name!r} encodes {has}s only, not {wanted}; use a dual encoder "
        f"(clip:<hub id or folder>) for {other}"
    )


#: Backbones to suggest for a modality (registry names that load offline here).
EXAMPLE_BACKBONES = {"image": "mobilenet_v2-imagenet", "text": "minilm"}


def check_encodes(
    encoder: Any, modality: str | None, what: str = "the source", flag: str = "backbone="
) -> None:
    """Refuse a source of another modality than ``encoder`` encodes, before the first batch
    (instead of one type error per item, or a store of skipped items).

    ``what`` names the source in the caller's words (``"--data photos/"``), ``flag`` the
    backbone option (``"--backbone "`` in the CLI).

    Examples
    --------
    >>> from embedpipe.backbones import load_backbone
    >>> enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    >>> check_encodes(enc, "image")
    >>> check_encodes(enc, "text", "--data reviews.csv", "--backbone ")
    Traceback (most recent call last):
    ...
    embedpipe.errors.ConfigError: backbone 'resnet18' encodes images, but --data reviews.csv holds texts; pass a text backbone: --backbone minilm (`embedpipe backbones` lists them)
    """
    has = getattr(encoder, "modality", None)
    if modality is None or has is None or has == modality:
        return
    raise ConfigError(
        f"backbone {encoder.spec.name!r} encodes {has}s, but {what} holds {modality}s; pass "
        f"a{'n' if modality[0] in 'aeiou' else ''} {modality} backbone: {flag}{EXAMPLE_BACKBONES.get(modality, '...')} "
        "(`embedpipe backbones` lists them)"
    )
