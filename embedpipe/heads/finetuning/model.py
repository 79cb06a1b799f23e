"""The fine-tuned network as one torch module (frozen bottom + tuned top + head), saved as a
safetensors state dict plus a JSON config and reloaded without pickle."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_model, save_model
from torch import nn

from ...backbones.base import BackboneSpec
from ...errors import ConfigError, ItemError
from ...store.format import library_versions
from .split import SplitBackbone, split_backbone, split_hf_text, split_torchvision
from .trunk import TRUNKS, Trunk, trunk_of

FORMAT = "embedpipe-finetuned"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
HF_DIR = "hf"


class FineTunedModel(nn.Module):
    """``head(top(bottom(x)))``: predicts from raw inputs (PIL images or texts).

    Parameters
    ----------
    split
        The backbone split whose ``top`` was tuned.
    head
        The classifier on the top's features.
    classes
        Class names, index ``i`` for logit ``i``.
    training
        What the training did (recorded in the saved config).

    Examples
    --------
    >>> from PIL import Image
    >>> from embedpipe.backbones import load_backbone
    >>> enc = load_backbone("resnet18", weights=None, crop_size=32, resize_size=32)
    >>> tuned = FineTunedModel(split_backbone(enc, 1), nn.Linear(512, 2), ["cat", "dog"])
    >>> _ = tuned.save("runs/tiny-ft")
    >>> model = FineTunedModel.load("runs/tiny-ft")
    >>> model.predict_names([Image.new("RGB", (40, 40))])[0] in ("cat", "dog")
    True
    """

    def __init__(
        self,
        split: SplitBackbone,
        head: nn.Linear,
        classes: Sequence[str],
        training: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.bottom = split.bottom
        self.top = split.top
        self.head = head
        self.split = split
        self.classes = list(classes)
        self.training_info = dict(training or {})

    def forward(self, batch: Any) -> torch.Tensor:
        """Logits of a model-ready batch (``split.collate`` output)."""
        return self.head(self.top(self.bottom(batch)))

    def train(self, mode: bool = True) -> FineTunedModel:
        super().train(mode)
        self.bottom.eval()  # the frozen part always uses its running statistics
        return self

    # ---- raw inputs ---------------------------------------------------------------------
    @torch.no_grad()
    def predict_logits(self, items: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Logits of raw items (PIL images or strings)."""
        self.eval()
        device = next(self.parameters()).device
        out = []
        for s in range(0, len(items), batch_size):
            samples = []
            for k in range(s, min(len(items), s + batch_size)):
                try:
                    samples.append(self.split.preprocess(items[k]))
                except Exception as e:  # noqa: BLE001
                    raise ItemError(f"#{k}", f"{type(e).__name__}: {e}") from e
            batch = self.split.collate(samples)
            batch = (
                {k: v.to(device) for k, v in batch.items()}
                if isinstance(batch, dict)
                else batch.to(device)
            )
            out.append(self(batch).float().cpu().numpy())
        return np.concatenate(out) if out else np.empty((0, len(self.classes)), np.float32)

    def predict_proba(self, items: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Class probabilities of raw items."""
        logits = self.predict_logits(items, batch_size)
        return torch.softmax(torch.from_numpy(logits), dim=1).numpy()

    def predict(self, items: Sequence[Any], batch_size: int = 64) -> np.ndarray:
        """Class indices of raw items."""
        return self.predict_logits(items, batch_size).argmax(axis=1)

    def predict_names(self, items: Sequence[Any], batch_size: int = 64) -> list[str]:
        """Class names of raw items."""
        return [self.classes[i] for i in self.predict(items, batch_size).tolist()]

    # ---- persistence --------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "base_backbone": self.split.base_spec.to_dict(),
            "split": self.split.info,
            "classes": self.classes,
            "head": {
                "in_features": int(self.head.in_features),
                "out_features": int(self.head.out_features),
            },
            "training": self.training_info,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": library_versions(),
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` (every weight) and ``config.json`` into ``directory``
        (the model is moved to the CPU).

        Text models also get ``hf/`` (the Hugging Face config and tokenizer, no weights), so
        the folder reloads without the original model.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_model(self.cpu(), str(directory / WEIGHTS_FILE))
        save = trunk_of(self.split.base_spec).save
        if save is not None:
            save(self.split.encoder, directory)
        (directory / CONFIG_FILE).write_text(
            json.dumps(self.config(), indent=2, default=str) + "\n", encoding="utf-8"
        )
        return directory

    @classmethod
    def load(cls, directory: str | Path, device: str = "cpu") -> FineTunedModel:
        """Rebuild the architecture from ``config.json`` and load ``model.safetensors`` (no pickle).

        Raises
        ------
        ConfigError
            If the folder is not a saved fine-tuned model or its weights do not fit.
        """
        directory = Path(directory)
        cfg_path = directory / CONFIG_FILE
        if not cfg_path.is_file() or not (directory / WEIGHTS_FILE).is_file():
            raise ConfigError(
                f"{str(directory)!r} is not a saved fine-tuned model (needs {CONFIG_FILE} and {WEIGHTS_FILE}); save one with FineTunedModel.save."
            )
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        if cfg.get("format") != FORMAT:
            raise ConfigError(
                f"{str(cfg_path)!r} is not an embedpipe fine-tuned model config (format {cfg.get('format')!r})."
            )
        if int(cfg.get("format_version", 0)) > FORMAT_VERSION:
            raise ConfigError(
                f"{str(directory)!r} was saved by a newer embedpipe; upgrade embedpipe."
            )
        spec = BackboneSpec.from_dict(cfg["base_backbone"])
        encoder = _architecture(spec, directory)
        split = split_backbone(encoder, int(cfg["split"]["k"]))
        head = nn.Linear(int(cfg["head"]["in_features"]), int(cfg["head"]["out_features"]))
        model = cls(split, head, cfg["classes"], cfg.get("training"))
        try:
            missing, unexpected = load_model(model, str(directory / WEIGHTS_FILE), strict=True)
        except RuntimeError as e:
            raise ConfigError(
                f"the weights in {str(directory)!r} do not fit the architecture its config describes: {str(e)[:400]}"
            ) from e
        return model.to(device).eval()


def _architecture(spec: BackboneSpec, directory: Path) -> Any:
    """An encoder of the right architecture and preprocessing, with untrained weights
    (the saved state dict replaces them): the declared trunk layout's ``rebuild``."""
    return trunk_of(spec).rebuild(spec, directory)


def rebuild_torchvision(spec: BackboneSpec, directory: Path) -> Any:
    """The ``cnn-blocks`` trunk's rebuild: a torchvision classifier with random weights."""
    from ...backbones import load_backbone

    return load_backbone(f"torchvision:{spec.name}", weights=None, **spec.preprocessing)


def save_hf_text(encoder: Any, directory: Path) -> None:
    """The ``encoder-layers`` trunk's save: the Hugging Face config and tokenizer
    (no weights) in ``hf/``, so the folder reloads without the original model."""
    encoder.model.model.config.save_pretrained(directory / HF_DIR)
    encoder.tokenizer.save_pretrained(directory / HF_DIR)


def rebuild_hf_text(spec: BackboneSpec, directory: Path) -> Any:
    """The ``encoder-layers`` trunk's rebuild (from ``hf/``)."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from ...backbones.hf_text import HFTextEncoder, TextCollate, TextFeatures, check_text

    hf = directory / HF_DIR
    config = AutoConfig.from_pretrained(hf, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(hf, local_files_only=True)
    model = AutoModel.from_config(config).eval()
    max_length = int(spec.preprocessing.get("max_length", tokenizer.model_max_length))
    feats = TextFeatures(model, None, spec.pooling, bool(spec.options.get("normalize", False)))
    return HFTextEncoder(
        spec,
        feats,
        int(config.hidden_size),
        check_text,
        TextCollate(tokenizer, max_length),
        tokenizer=tokenizer,
        max_length=max_length,
    )


TRUNKS.register("cnn-blocks", Trunk(split_torchvision, rebuild_torchvision))
TRUNKS.register("encoder-layers", Trunk(split_hf_text, rebuild_hf_text, save_hf_text))


def load_finetuned(directory: str | Path, device: str = "cpu") -> FineTunedModel:
    """Load a fine-tuned model saved with :meth:`FineTunedModel.save`."""
    return FineTunedModel.load(directory, device)
