"""The Encoder interface every backbone adapter implements, and its spec dataclass."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

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
        ``"avg"``, ``"max"``, ``"cls"``, ``"mean"``, ``"pooler"``, ``"idf_mean"``...
    modality
        ``"image"`` or ``"text"``.
    preprocessing
        Everything that changes the model's input: mean, std, resize, crop, interpolation,
        max_length, lowercase, normalize...
    options
        Other settings that change the output (e.g. ``normalize`` for L2 normalisation).
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BackboneSpec:
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

    ``preprocess`` runs in DataLoader worker processes (must be picklable, no model access):
    it turns one raw item (a PIL RGB image, or a ``str``) into a model-ready sample (a CHW
    float tensor for images; for text, the string itself or token ids). ``collate`` turns a
    list of samples into a batch (for text: tokenisation with padding to the batch's longest).
    ``encode`` moves the batch to the device (non-blocking), runs under
    ``torch.inference_mode`` and autocast at the configured precision, and returns a float32
    ``[B, dim]`` CPU tensor.

    Text encoders also offer ``lengths(texts) -> list[int]`` (token counts, used to sort text
    into batches of similar length).
    """

    spec: BackboneSpec
    dim: int
    modality: Modality

    @property
    def fingerprint(self) -> str: ...

    def preprocess(self, item: Any) -> Any: ...

    def collate(self, samples: list[Any]) -> Any: ...

    def encode(self, batch: Any) -> torch.Tensor: ...

    def to(self, device: str | torch.device, precision: str = "fp32") -> Encoder:
        """Move to ``device`` and set the compute precision (``"fp32"``, ``"bf16"``, ``"fp16"``)."""
        ...
