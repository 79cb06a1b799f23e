"""The Encoder interface every backbone adapter implements, and its spec dataclass."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, Protocol, runtime_checkable

import torch

from embedpipe.errors import ConfigError

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

    def __post_init__(self) -> None:
        # Store dicts in their JSON form (tuples → lists...), so a spec read back from a
        # store's provenance compares equal to the one that wrote it.
        for name in ("preprocessing", "options", "files"):
            value = getattr(self, name)
            object.__setattr__(self, name, json.loads(json.dumps(value, default=str)))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

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
        return cls(**d)

    def fingerprint(self) -> str:
        """A short stable hash of everything that determines the features.

        The local path of a weights file or model folder is *not* part of it: ``weights_id``
        (a content hash) is, so moving a file keeps the fingerprint.
        """
        d = self.to_dict()
        payload = {
            "kind": d["kind"],
            "name": d["name"] if d["kind"] == "torchvision" else None,
            "weights_id": d["weights_id"],
            "layer": d["layer"],
            "pooling": d["pooling"],
            "modality": d["modality"],
            "preprocessing": d["preprocessing"],
            "options": d["options"],
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.blake2b(blob, digest_size=12).hexdigest()


@runtime_checkable
class Encoder(Protocol):
    """A frozen backbone ready to encode.

    ``preprocess`` runs in DataLoader worker processes: it turns one raw item (a PIL RGB image,
    or a ``str``) into a model-ready sample (a CHW float tensor for images; for text, the
    checked string or token ids). ``collate`` turns a list of samples into a batch (for text:
    tokenisation with padding to the batch's longest). Both are small picklable callables
    that hold no model, so sending them to workers is cheap. ``encode`` moves the batch to
    the device (non-blocking), runs under ``torch.inference_mode`` and autocast at the
    configured precision, and returns a float32 ``[B, dim]`` CPU tensor.

    ``device`` and ``precision`` say where and how ``encode`` computes; precision is not
    part of the fingerprint (the engine records it in the store's provenance).
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
    """An :class:`Encoder` of text, which can also count tokens.

    ``lengths(texts)`` returns each text's token count (after truncation), used to sort
    texts into batches of similar length.
    """

    def lengths(self, texts: list[str]) -> list[int]: ...
