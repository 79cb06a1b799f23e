"""Predicting on new raw inputs: backbone + trained head, or a fine-tuned model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backbones.base import Encoder
from ..data.base import DataSource
from .finetune.model import CONFIG_FILE, FineTunedModel
from .trained import Predictions, TrainedHead

Model = TrainedHead | FineTunedModel


def load_model(path: str | Path) -> Model:
    """A saved head file (``.joblib``) or a fine-tuned model folder (``config.json`` inside)."""
    path = Path(path)
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return FineTunedModel.load(path)
    return TrainedHead.load(path)


def head_encoder(head: TrainedHead, device: str = "auto") -> Encoder:
    """Reload the backbone a head was trained on, from the spec in its provenance."""
    from ..backbones import load_backbone

    encoder = load_backbone(head.backbone)
    head.check_fingerprint(
        encoder.fingerprint, f"backbone {head.backbone.get('name')!r} as reloaded"
    )
    return encoder.to(device, precision="fp32")


def _predict_chunk(
    model: Model, items: Sequence[Any], ids: Sequence[str], encoder: Encoder | None, batch_size: int
) -> Predictions:
    if isinstance(model, FineTunedModel):
        proba = model.predict_proba(items, batch_size)
        labels = proba.argmax(axis=1)
        return Predictions(
            list(ids), labels.astype(np.int64), model.classes, proba.max(axis=1), proba
        )
    from ..encode import encode_items

    assert encoder is not None
    return model.predictions(encode_items(encoder, items, batch_size=batch_size), ids)


def predict_items(
    model: Model | str | Path,
    items: Sequence[Any],
    *,
    ids: Sequence[str] | None = None,
    encoder: Encoder | None = None,
    batch_size: int = 64,
) -> Predictions:
    """Predict raw items (PIL images or strings).

    Parameters
    ----------
    model
        A :class:`TrainedHead` (items go through its backbone, reloaded from the head's
        provenance unless ``encoder`` is given, then the head), a :class:`FineTunedModel`,
        or the path of either.
    items
        Raw inputs.
    ids
        Their ids (default: ``"0"``, ``"1"``...).
    encoder
        The backbone to use with a head; its fingerprint must be the head's.

    Returns
    -------
    Predictions
    """
    if isinstance(model, (str, Path)):
        model = load_model(model)
    ids = [str(i) for i in (ids if ids is not None else range(len(items)))]
    if isinstance(model, TrainedHead):
        if encoder is None:
            encoder = head_encoder(model)
        else:
            model.check_fingerprint(encoder.fingerprint, "features of the given encoder")
    return _predict_chunk(model, items, ids, encoder, batch_size)


def predict_source(
    model: Model | str | Path,
    source: DataSource,
    *,
    batch_size: int = 64,
    chunk: int = 4096,
    encoder: Encoder | None = None,
) -> Predictions:
    """Predict every item of a data source, ``chunk`` items in memory at a time."""
    if isinstance(model, (str, Path)):
        model = load_model(model)
    if isinstance(model, TrainedHead):
        if encoder is None:
            encoder = head_encoder(model)
        else:
            model.check_fingerprint(encoder.fingerprint, "features of the given encoder")
    parts = []
    for s in range(0, len(source), chunk):
        rng = range(s, min(len(source), s + chunk))
        parts.append(
            _predict_chunk(
                model,
                [source.load(i) for i in rng],
                [str(source.ids[i]) for i in rng],
                encoder,
                batch_size,
            )
        )
    classes = model.classes
    if not parts:
        return Predictions([], np.empty(0, np.int64), classes)
    return Predictions(
        [i for p in parts for i in p.ids],
        np.concatenate([p.labels for p in parts]),
        classes,
        None if parts[0].scores is None else np.concatenate([p.scores for p in parts]),  # type: ignore[misc]
        None if parts[0].proba is None else np.concatenate([p.proba for p in parts]),  # type: ignore[misc]
    )
