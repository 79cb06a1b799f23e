"""Hugging Face vision models (``AutoModel`` + ``AutoImageProcessor``) as frozen encoders."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torch import nn
from transformers import AutoImageProcessor, AutoModel

from embedpipe.backbones._torch_encoder import TorchEncoder
from embedpipe.backbones.base import BackboneSpec, reload
from embedpipe.backbones.hf_hub import (
    HFSource,
    from_pretrained,
    hidden_state_index,
    resolve_source,
    source_spec,
)
from embedpipe.backbones.rgb import as_rgb
from embedpipe.backbones.torchvision_backbone import stack_collate
from embedpipe.errors import Arg, ConfigError

# The processor settings that change the model's input.
_PROCESSOR_KEYS = (
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "do_convert_rgb",
    "do_pad",
)


class HFImagePreprocess:
    """PIL image → ``pixel_values`` CHW tensor with the model's own image processor.

    Picklable (the processor is plain configuration), so it runs in DataLoader workers.
    """

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, img: Image.Image) -> torch.Tensor:
        if not isinstance(img, Image.Image):
            raise TypeError(f"expected a PIL image, got {type(img)}")
        # transformers' convert_to_rgb: transparency composited over white
        img = as_rgb(img, "white")
        return self.processor(images=img, return_tensors="pt")["pixel_values"][0]


class _VisionFeatures(nn.Module):
    def __init__(self, model: nn.Module, layer: int | None, pooling: str) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        self.pooling = pooling

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values, output_hidden_states=self.layer is not None)
        if self.pooling == "pooler":
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                raise ConfigError(
                    "this model has no pooler output; use ", Arg("pooling", "cls"), " or 'mean'"
                )
            return pooled.flatten(1)
        h = out.hidden_states[self.layer] if self.layer is not None else out.last_hidden_state
        if h.dim() == 4:  # CNN feature map [B, C, H, W]
            return h.mean(dim=(2, 3))
        return h[:, 0] if self.pooling == "cls" else h.mean(dim=1)


class HFVisionEncoder(TorchEncoder):
    """A Hugging Face vision model as a frozen image encoder (see :func:`load_hf_vision`)."""

    family = "transformer"


def _processor_dict(processor: Any) -> dict[str, Any]:
    d = processor.to_dict()
    out = {k: d[k] for k in _PROCESSOR_KEYS if k in d and d[k] is not None}
    out["processor"] = type(processor).__name__
    return out


def load_hf_vision(
    name: str,
    *,
    weights: str | None = None,
    layer: str | int | None = None,
    pooling: str | None = None,
    trust_remote_code: bool = False,
) -> HFVisionEncoder:
    """Load a Hugging Face vision model as a frozen image encoder.

    Parameters
    ----------
    name
        Hub id (``"google/vit-base-patch16-224-in21k"``) or a local folder saved with
        ``save_pretrained`` (model and image processor). With ``HF_HUB_OFFLINE=1`` only the
        local cache is used.
    weights
        Hub revision (branch, tag or commit); ``None`` for the default branch.
    layer
        ``None`` for the last hidden state, or an index into ``hidden_states`` (``0`` is the
        embeddings, ``-2`` the second-to-last block).
    pooling
        ``"cls"`` (first token, default for token models), ``"mean"`` (over tokens, or over
        space for CNN feature maps; default for CNNs) or ``"pooler"`` (the model's pooler).
    trust_remote_code
        Allow running code from the model repository. Off by default.

    Returns
    -------
    HFVisionEncoder
        ``spec.weights_id`` is the sha256 of the weights file, not its path.

    Raises
    ------
    ConfigError
        Unknown/missing model, bad layer or pooling, model needing remote code.

    Examples
    --------
    >>> from transformers import ViTConfig, ViTImageProcessor, ViTModel
    >>> cfg = ViTConfig(image_size=32, patch_size=8, hidden_size=16, num_hidden_layers=1,
    ...                 num_attention_heads=2, intermediate_size=32)
    >>> ViTModel(cfg).save_pretrained("vit")
    >>> ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained("vit")  # doctest: +ELLIPSIS
    [...]
    >>> enc = load_hf_vision("./vit", pooling="cls")
    >>> enc.dim, enc.spec.pooling
    (16, 'cls')
    """
    source = resolve_source(name, weights)
    return _load(source, layer=layer, pooling=pooling, trust_remote_code=trust_remote_code)


def _load(
    source: HFSource, *, layer: str | int | None, pooling: str | None, trust_remote_code: bool
) -> HFVisionEncoder:
    processor = from_pretrained(
        AutoImageProcessor, source, "image processor", trust_remote_code=trust_remote_code
    )
    model = from_pretrained(AutoModel, source, "model", trust_remote_code=trust_remote_code)
    model.eval()
    layer_idx = hidden_state_index(layer, source.name)
    preprocess = HFImagePreprocess(processor)
    x = preprocess(Image.new("RGB", (64, 64))).unsqueeze(0)
    with torch.inference_mode():
        out = model(pixel_values=x, output_hidden_states=layer_idx is not None)
    if layer_idx is not None:
        n = len(out.hidden_states)
        if not -n <= layer_idx < n:
            raise ConfigError(
                f"layer {layer_idx} out of range for {source.name!r}: it has {n} hidden "
                f"states (0..{n - 1}, or negative from the end)"
            )
        h = out.hidden_states[layer_idx]
    else:
        h = out.last_hidden_state
    has_pooler = getattr(out, "pooler_output", None) is not None and layer_idx is None
    choices = ["cls", "mean"] if h.dim() == 3 else ["mean"]
    if has_pooler:
        choices.append("pooler")
    pooling = pooling or choices[0]
    if pooling not in choices:
        raise ConfigError(
            f"pooling {pooling!r} does not apply to {source.name!r} (hidden state shape "
            f"{tuple(h.shape)}{', no pooler' if not has_pooler else ''}); use one of {choices}"
        )
    feats = _VisionFeatures(model, layer_idx, pooling)
    dim = int(
        out.pooler_output.flatten(1).shape[1]
        if pooling == "pooler"
        else h.shape[-1 if h.dim() == 3 else 1]
    )
    prep = _processor_dict(processor)
    spec = source_spec(source, "hf_vision", layer_idx, pooling=pooling, preprocessing=prep)
    return HFVisionEncoder(spec, feats, dim, preprocess, stack_collate)


def hf_vision_from_spec(spec: BackboneSpec, **overrides: Any) -> HFVisionEncoder:
    """Rebuild the encoder a spec describes (``overrides`` replace ``name``/``weights``/...).

    A spec never turns on ``trust_remote_code``: pass it as an override if needed.
    """
    return reload(load_hf_vision, spec, overrides, "weights", "layer", "pooling")
