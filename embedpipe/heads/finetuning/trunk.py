"""Shallow fine-tuning by declaration: a backbone kind names its trunk's layout
(``BackboneKind.trunk``, e.g. ``"cnn-blocks"``), and :data:`TRUNKS` holds, for each layout,
how to cut an encoder of it, rebuild one for a saved model, and what else a saved model needs.

Fine-tuning code branches on what the cut declares (``Cut.sequence``: token activations with
the attention mask as a last channel), never on a backbone's family name.

Examples
--------
>>> sorted(TRUNKS)
['cnn-blocks', 'encoder-layers']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...backbones.base import BackboneSpec, Encoder
from ...backbones.kind import kind_of_spec
from ...errors import ConfigError
from ...registry import Registry

if TYPE_CHECKING:
    from .split import Cut


@dataclass(frozen=True)
class Trunk:
    """How to fine-tune a trunk layout.

    Parameters
    ----------
    split
        ``split(encoder, k) -> Cut``: the frozen bottom and the trainable last ``k`` blocks.
    rebuild
        ``rebuild(spec, directory) -> Encoder`` with untrained weights of the right architecture
        (a saved fine-tuned model's state dict replaces them).
    save
        ``save(encoder, directory)``: extra files a fine-tuned model folder needs, or ``None``.
    """

    split: Callable[[Encoder, int], Cut]
    rebuild: Callable[[BackboneSpec, Path], Any]
    save: Callable[[Any, Path], None] | None = None


#: The trunk layouts (the built-ins are registered beside their code, in ``model.py``).
TRUNKS: Registry[Trunk] = Registry(
    "fine-tuning trunk", group=None, builtins="embedpipe.heads.finetuning.model"
)


def trunk_of(spec: BackboneSpec) -> Trunk:
    """The trunk layout that ``spec``'s backbone kind declares.

    Raises
    ------
    ConfigError
        When the kind declares none (it cannot be fine-tuned).
    """
    kind = kind_of_spec(spec.kind)
    if kind.trunk is None:
        raise ConfigError(
            f"shallow fine-tuning supports torchvision and Hugging Face text (BERT-family) "
            f"backbones, not {spec.kind!r} ({spec.name!r})."
        )
    return TRUNKS.get(kind.trunk)
