"""Shallow fine-tuning: unfreeze the last ``k`` blocks of a backbone and train them with a new
head, optionally from a cache of the activations at their input (the frozen bottom then runs
once, not once per epoch)."""

from __future__ import annotations

from .activations import ActivationEncoder, activation_info, cache_activations, load_activations
from .model import FineTunedModel, load_finetuned
from .split import SplitBackbone, split_backbone
from .trainer import FineTuneResult, finetune

__all__ = [
    "ActivationEncoder",
    "FineTuneResult",
    "FineTunedModel",
    "SplitBackbone",
    "activation_info",
    "cache_activations",
    "finetune",
    "load_activations",
    "load_finetuned",
    "split_backbone",
]
