"""Cutting a backbone into a frozen bottom and a trainable top of its last ``k`` blocks.

``top(bottom(x))`` equals the backbone's own features (in eval mode), so a new head on the top
starts from exactly the frozen linear probe's input.

- torchvision CNNs: the blocks are the children of ``model.features`` (MobileNet, EfficientNet,
  ConvNeXt, DenseNet, VGG... with plain ``nn.Sequential`` stages opened one level), or the stem
  modules then the residual blocks of ``layer1``..``layer4`` (ResNet, ResNeXt, Wide ResNet), or
  the stem then the blocks of ``trunk_output`` (RegNet). The top is the rest of the network:
  the last ``k`` blocks, pooling and what the classifier keeps before its last ``Linear``.
- Hugging Face BERT-family text encoders (``model.encoder.layer``): the bottom is the embeddings
  and the first ``n - k`` layers, the top the last ``k`` layers and the encoder's pooling. Their
  activation is the hidden states with the attention mask as one extra channel:
  ``[T, hidden + 1]``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...backbones.base import BackboneSpec, Encoder
from ...errors import ConfigError


def _block_paths(model: nn.Module) -> list[str]:
    """Dotted names of the blocks a torchvision classifier runs one after the other."""
    named = dict(model.named_children())
    if "features" in named and isinstance(named["features"], nn.Sequential):
        paths = []
        for name, child in named["features"].named_children():
            if type(child) is nn.Sequential:  # a stage of blocks (EfficientNet, ConvNeXt)
                paths += [f"features.{name}.{sub}" for sub, _ in child.named_children()]
            else:
                paths.append(f"features.{name}")
        return paths
    if all(f"layer{i}" in named for i in range(1, 5)) and "conv1" in named:
        stem = [n for n in ("conv1", "bn1", "relu", "maxpool") if n in named]
        return stem + [
            f"layer{i}.{b}" for i in range(1, 5) for b, _ in named[f"layer{i}"].named_children()
        ]
    if "stem" in named and "trunk_output" in named:
        return ["stem"] + [
            f"trunk_output.{s}.{b}"
            for s, stage in named["trunk_output"].named_children()
            for b, _ in stage.named_children()
        ]
    raise ConfigError(
        f"cannot split {type(model).__name__} into blocks; shallow fine-tuning supports torchvision "
        "models with a `features` sequence (MobileNet, EfficientNet, ConvNeXt, DenseNet, VGG...), "
        "ResNet-style layer1..layer4, RegNet, and BERT-family Hugging Face text encoders."
    )


def _set_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_name, _, child = path.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)


def _check_k(k: int, max_k: int, what: str) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= max_k:
        raise ConfigError(f"cannot unfreeze k={k!r} blocks of {what}; use 1..{max_k}.")


class TorchvisionTop(nn.Module):
    """The network after the split point: runs the copied model whose first blocks are ``Identity``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class _HFBottom(nn.Module):
    """Embeddings and the first layers; returns ``[B, T, H + 1]`` (hidden states, then the mask)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.model(**batch)
        h = out[0] if isinstance(out, tuple) else out.last_hidden_state
        mask = batch["attention_mask"].to(h.dtype).unsqueeze(-1)
        return torch.cat([h, mask], dim=-1)


class HFTop(nn.Module):
    """The last encoder layers of a BERT-family model and the encoder's pooling."""

    def __init__(self, encoder: nn.Module, config: Any, pooling: str, normalize: bool) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.pooling = pooling
        self.normalize = normalize

    def _mask(self, h: torch.Tensor, mask: torch.Tensor) -> Any:
        try:
            from transformers.masking_utils import create_bidirectional_mask
        except ImportError:  # transformers 4.x: additive extended mask
            ext = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
            return ext
        return create_bidirectional_mask(config=self.config, inputs_embeds=h, attention_mask=mask)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        h, mask = a[..., :-1], a[..., -1]
        out = self.encoder(h, attention_mask=self._mask(h, mask.long()))
        h = out[0] if isinstance(out, tuple) else out.last_hidden_state
        if self.pooling == "cls":
            pooled = h[:, 0]
        else:
            m = mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1) if self.normalize else pooled


@dataclass(eq=False, repr=False)
class SplitBackbone:
    """A backbone cut before its last ``k`` blocks.

    Attributes
    ----------
    bottom
        Frozen, eval-mode module: model-ready batch → activation ``[B, *activation_shape]``.
    top
        Trainable module: activation → features ``[B, feature_dim]``.
    base_spec
        The spec of the backbone that was split (its preprocessing turns raw inputs into
        ``bottom``'s input).
    k, n_blocks, split_at
        Unfrozen block count, total blocks, dotted name of the first unfrozen block.
    trunk, sequence
        The trunk layout the backbone's kind declares, and whether activations are token
        sequences ``[T, H + 1]`` (the attention mask as the last channel).
    activation_shape, feature_dim
        Shape of one item's activation at the split, and of the top's output.
    """

    bottom: nn.Module
    top: nn.Module
    base_spec: BackboneSpec
    encoder: Encoder
    k: int
    n_blocks: int
    split_at: str
    activation_shape: tuple[int, ...]
    feature_dim: int
    trunk: str
    sequence: bool = False

    @property
    def info(self) -> dict[str, Any]:
        """JSON description of the split (goes into configs and store provenance)."""
        info = {n: getattr(self, n) for n in ("trunk", "k", "n_blocks", "split_at", "feature_dim")}
        shape = list(self.activation_shape)
        return info | {"activation_shape": shape, "base_fingerprint": self.base_spec.fingerprint()}

    @property
    def activation_spec(self) -> BackboneSpec:
        """The spec of the intermediate-layer features: the base spec with the split as layer."""
        d = self.base_spec.to_dict()
        d["layer"] = f"input:{self.split_at}"
        d["pooling"] = "none"
        d["options"] = {
            **d["options"],
            "activation_shape": list(self.activation_shape),
            "unfrozen_blocks": self.k,
        }
        return BackboneSpec.from_dict(d)

    def preprocess(self, item: Any) -> Any:
        return self.encoder.preprocess(item)

    def collate(self, samples: list[Any]) -> Any:
        return self.encoder.collate(samples)

    def __repr__(self) -> str:
        return f"SplitBackbone({self.base_spec.name!r}, k={self.k}/{self.n_blocks}, split_at={self.split_at!r}, activation={self.activation_shape})"


@dataclass(frozen=True)
class Cut:
    """What a trunk layout's ``split`` returns: the frozen bottom, the trainable top, the first
    unfrozen block, the block count, and whether activations are token sequences ``[T, H + 1]``."""

    bottom: nn.Module
    top: nn.Module
    split_at: str
    n_blocks: int
    sequence: bool = False


def split_torchvision(encoder: Encoder, k: int) -> Cut:
    """The ``cnn-blocks`` trunk's split: the last ``k`` blocks of a torchvision classifier."""
    spec = encoder.spec
    module = getattr(encoder, "model", None)
    if module is None:
        raise ConfigError(f"{spec.name!r} has no torch model to split.")
    model = copy.deepcopy(getattr(module, "body", module)).cpu().float()
    paths = _block_paths(model)
    _check_k(k, len(paths) - 1, f"{spec.name} (it has {len(paths)} blocks)")
    cut = len(paths) - k
    bottom: nn.Module = nn.Sequential(*[model.get_submodule(p) for p in paths[:cut]])
    for p in paths[:cut]:
        _set_module(model, p, nn.Identity())
    return Cut(bottom, TorchvisionTop(model), paths[cut], len(paths))


def split_hf_text(encoder: Encoder, k: int) -> Cut:
    """The ``encoder-layers`` trunk's split: the last ``k`` layers of a BERT-family encoder
    and its pooling."""
    spec = encoder.spec
    module: Any = getattr(encoder, "model", None)
    if module is None or not hasattr(getattr(module, "model", None), "encoder"):
        raise ConfigError(
            f"shallow fine-tuning supports torchvision and Hugging Face text (BERT-family) "
            f"backbones, not {spec.kind!r} ({spec.name!r})."
        )
    hf = copy.deepcopy(module.model).cpu().float()
    layers = getattr(hf.encoder, "layer", None)
    if not isinstance(layers, nn.ModuleList):
        raise ConfigError(
            f"{spec.name!r} is not a BERT-family encoder (no encoder.layer); shallow fine-tuning cannot split it."
        )
    n_blocks = len(layers)
    _check_k(k, n_blocks, f"{spec.name} (it has {n_blocks} encoder layers)")
    cut = n_blocks - k
    top_layers = nn.ModuleList(list(layers)[cut:])
    hf.encoder.layer = nn.ModuleList(list(layers)[:cut])
    bottom = _HFBottom(hf)
    top_encoder = copy.deepcopy(hf.encoder)
    top_encoder.layer = top_layers
    top = HFTop(top_encoder, hf.config, module.pooling, bool(module.normalize))
    if module.pooling == "pooler":
        raise ConfigError(
            "shallow fine-tuning of a text encoder needs pooling='mean' or 'cls', not 'pooler'."
        )
    return Cut(bottom, top, f"encoder.layer.{cut}", n_blocks, sequence=True)


def _probe_input(encoder: Encoder) -> Any:
    if encoder.modality == "image":
        size = int(encoder.spec.preprocessing.get("crop_size", 224))
        return torch.zeros(1, 3, size, size)
    return encoder.collate([encoder.preprocess("probe")])


def split_backbone(encoder: Encoder, k: int, *, seq_len: int | None = None) -> SplitBackbone:
    """Cut ``encoder``'s model before its last ``k`` blocks.

    The encoder is not modified (its model is copied).

    Parameters
    ----------
    encoder
        A torchvision or Hugging Face text encoder from :func:`embedpipe.backbones.load_backbone`,
        at its default (penultimate / last hidden state) layer.
    k
        Number of blocks (CNN) or layers (transformer) to unfreeze.
    seq_len
        Text only: the fixed token length of activations (default: the encoder's
        ``max_length``); :func:`cache_activations` sets it to the longest text of the data.

    Returns
    -------
    SplitBackbone

    Raises
    ------
    ConfigError
        Unsupported architecture, intermediate-layer encoder, or ``k`` out of range.

    Examples
    --------
    >>> from embedpipe.backbones import load_backbone
    >>> enc = load_backbone("torchvision:resnet18", weights=None, resize_size=64, crop_size=64)
    >>> split_backbone(enc, 2).split_at
    'layer4.0'
    """
    spec = encoder.spec
    if spec.layer is not None:
        raise ConfigError(
            f"shallow fine-tuning starts from a backbone's default features; {spec.name!r} was "
            f"loaded with layer={spec.layer!r}. Load it without layer=."
        )
    from ...backbones.kind import kind_of_spec
    from .trunk import trunk_of

    cut = trunk_of(spec).split(encoder, k)
    bottom, top = cut.bottom, cut.top
    split_at, n_blocks = cut.split_at, cut.n_blocks
    bottom.eval().requires_grad_(False)
    top.requires_grad_(True)
    probe = _probe_input(encoder)
    with torch.no_grad():
        a = bottom(probe)
        top.eval()
        f = top(a)
    shape = tuple(int(s) for s in a.shape[1:])
    if cut.sequence:
        shape = (
            int(seq_len) if seq_len is not None else int(getattr(encoder, "max_length", shape[0])),
            shape[1],
        )
    return SplitBackbone(
        bottom,
        top,
        spec,
        encoder,
        k=k,
        n_blocks=n_blocks,
        split_at=split_at,
        activation_shape=shape,
        feature_dim=int(f.shape[1]),
        trunk=str(kind_of_spec(spec.kind).trunk),
        sequence=cut.sequence,
    )
