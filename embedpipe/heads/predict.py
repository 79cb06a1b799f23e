"""Predicting on new raw inputs: backbone + trained head, or a fine-tuned model."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backbones.base import Encoder
from ..data.base import DataSource, reference
from ..errors import ConfigError, ItemError
from .finetuning.model import CONFIG_FILE, FineTunedModel
from .trained import Predictions, TrainedHead

Model = TrainedHead | FineTunedModel


def load_model(path: str | Path, *, trusted: bool = False) -> Model:
    """A saved head file or a fine-tuned model folder (``config.json`` inside).

    A pickle (joblib) head loads only with ``trusted`` (see :meth:`TrainedHead.load`).
    """
    path = Path(path)
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return FineTunedModel.load(path)
    return TrainedHead.load(path, trusted=trusted)


_PLURAL = {"image": "images", "text": "texts"}


def expected_modality(model: Model) -> tuple[str | None, str]:
    """``(modality, backbone name)`` of the inputs a head or fine-tuned model takes."""
    if isinstance(model, FineTunedModel):
        spec = model.split.base_spec
        return getattr(spec, "modality", None), str(getattr(spec, "name", "?"))
    return model.backbone.get("modality"), str(model.backbone.get("name", "?"))


def check_modality(model: Model, given: str | None, what: str) -> None:
    """Refuse inputs of another modality than the model's backbone encodes, saying what it
    expects (instead of a type error deep inside the backbone).

    Examples
    --------
    >>> head = TrainedHead(None, {}, "fp", {"name": "resnet18", "modality": "image"}, ["a"], 4)
    >>> check_modality(head, "text", "--data reviews.csv")
    Traceback (most recent call last):
    ...
    embedpipe.errors.ConfigError: this head expects images (its backbone is 'resnet18'), but --data reviews.csv holds texts; predict images, or use a head trained on a text backbone.
    """
    wanted, backbone = expected_modality(model)
    if wanted is None or given is None or wanted == given:
        return
    kind = "head" if isinstance(model, TrainedHead) else "fine-tuned model"
    raise ConfigError(
        f"this {kind} expects {_PLURAL.get(wanted, wanted)} (its backbone is {backbone!r}), but "
        f"{what} holds {_PLURAL.get(given, given)}; predict {_PLURAL.get(wanted, wanted)}, or use "
        f"a {kind} trained on a{'n' if given[0] in 'aeiou' else ''} {given} backbone."
    )


def _items_modality(items: Sequence[Any]) -> str | None:
    if not len(items):
        return None
    first = items[0]
    if isinstance(first, str):
        return "text"
    return "image"  # PIL images, arrays, tensors


def head_encoder(head: TrainedHead, device: str = "auto", runtime: str = "torch") -> Encoder:
    """Reload the backbone a head was trained on, from the spec in its provenance, at fp32
    on ``runtime`` (see :mod:`embedpipe.backbones.runtimes`; not torch: on the CPU)."""
    from ..backbones import load_backbone
    from ..backbones.runtimes import with_runtime

    encoder = load_backbone(head.backbone)
    head.check_fingerprint(
        encoder.fingerprint, f"backbone {head.backbone.get('name')!r} as reloaded"
    )
    if runtime != "torch":
        return with_runtime(encoder.to("cpu", precision="fp32"), runtime, "fp32")  # type: ignore[no-any-return]
    return encoder.to(device, precision="fp32")


def _predict_chunk(
    model: Model, items: Sequence[Any], ids: Sequence[str], encoder: Encoder | None, batch_size: int
) -> Predictions:
    try:
        if isinstance(model, FineTunedModel):
            proba = model.predict_proba(items, batch_size)
            labels = proba.argmax(axis=1)
            return Predictions(
                list(ids), labels.astype(np.int64), model.classes, proba.max(axis=1), proba
            )
        from ..encoding import encode_items

        assert encoder is not None
        features = encode_items(encoder, items, batch_size=batch_size)
    except ItemError as e:
        # the encode message suggests --on-error, an option predicting does not have
        raise ConfigError(
            f"item {e.item_id!r}: {e.reason}. Fix or remove it, then predict again."
        ) from None
    return model.predictions(features, ids)


def predict_items(
    model: Model | str | Path,
    items: Sequence[Any],
    *,
    ids: Sequence[str] | None = None,
    encoder: Encoder | None = None,
    batch_size: int = 64,
    runtime: str = "torch",
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
    runtime
        Where the reloaded backbone runs (``"torch"``, ``"openvino"``, ``"onnxruntime"``,
        ``"auto"``; see :mod:`embedpipe.backbones.runtimes`).

    Returns
    -------
    Predictions
    """
    if isinstance(model, (str, Path)):
        model = load_model(model)
    ids = [str(i) for i in (ids if ids is not None else range(len(items)))]
    if (
        expected_modality(model)[0] == "image"
        and items
        and all(isinstance(x, (str, Path)) and Path(x).is_file() for x in items)
    ):
        if isinstance(model, TrainedHead) and encoder is None:
            encoder = head_encoder(model, runtime=runtime)
        with _decoding(encoder):  # as the head's stores decoded them
            items = [_open_image(x) for x in items]  # image paths
    check_modality(model, _items_modality(items), "the items given")
    if isinstance(model, TrainedHead):
        if encoder is None:
            encoder = head_encoder(model, runtime=runtime)
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
    runtime: str = "torch",
) -> Predictions:
    """Predict every item of a data source, ``chunk`` items in memory at a time."""
    if isinstance(model, (str, Path)):
        model = load_model(model)
    check_modality(
        model, getattr(source, "modality", None), f"the data source ({len(source)} items)"
    )
    if isinstance(model, TrainedHead):
        if encoder is None:
            encoder = head_encoder(model, runtime=runtime)
        else:
            model.check_fingerprint(encoder.fingerprint, "features of the given encoder")
    parts = []
    for s in range(0, len(source), chunk):
        rng = range(s, min(len(source), s + chunk))
        with _decoding(encoder):
            loaded = [source.load(i) for i in rng]
        parts.append(
            _predict_chunk(
                model,
                loaded,
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
        inputs=[reference(source, i) for i in range(len(source))],
        true=_true_labels(source, classes),
    )


def _true_labels(source: DataSource, classes: Sequence[str]) -> np.ndarray:
    """The source's labels as indices into the model's ``classes`` (``-1`` where unknown)."""
    labels = np.asarray(source.labels, np.int64)
    names = list(getattr(source, "classes", []) or [])
    if not names or list(names) == list(classes):
        return labels
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(names[v], -1) if v >= 0 else -1 for v in labels], np.int64)


def _decoding(encoder: Encoder | None) -> contextlib.AbstractContextManager[None]:
    """Images decoded as ``encoder``'s stores decode them (a fine-tuned model: at full size)."""
    from ..encoding.loader import decoding_for_encoder

    return decoding_for_encoder(encoder) if encoder is not None else contextlib.nullcontext()


def _open_image(path: str | Path) -> Any:

    p = Path(path)
    if not p.is_file():
        raise ConfigError(
            f"{str(path)!r} is not an image file; this head expects images (PIL images or paths)."
        )
    from ..data.images import ImageShapeError, decode_upright

    try:
        return decode_upright(p)  # RGB, or RGBA for the backbone to convert its own way
    except ImageShapeError as e:  # a long strip would be resized into gigabytes
        raise ConfigError(f"{str(path)!r}: {e}.") from None
