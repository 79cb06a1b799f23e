"""The extraction engine: loader → frozen backbone → background HDF5 writer."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backbones.base import Encoder
from ..data.base import DataSource, content_hashes
from ..data.base import digest as source_digest
from ..errors import ConfigError, ItemError, StoreError
from ..store import FeatureStore, StoreWriter
from .loader import auto_workers, iter_batches, text_order
from .reuse import ReusePool
from .writer_thread import BackgroundWriter

log = logging.getLogger(__name__)

OnError = Literal["raise", "skip"]


@dataclass
class EncodeResult:
    """What an encode did.

    ``n_encoded`` rows went through the model in this call, ``n_reused`` were copied from
    other stores by content hash, ``n_resumed`` were already in the store, ``n_skipped`` items
    failed and were skipped (``on_error='skip'``). ``seconds`` is the whole call (model
    loading and content hashing included), ``encode_seconds`` the loader → model → writer loop.
    """

    path: Path
    n_items: int
    n_encoded: int
    n_reused: int
    n_resumed: int
    n_skipped: int
    seconds: float
    encode_seconds: float
    fingerprint: str
    device: str
    precision: str

    @property
    def items_per_s(self) -> float:
        return self.n_encoded / self.encode_seconds if self.encode_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["items_per_s"] = round(self.items_per_s, 2)
        return d


def _resolve_encoder(
    backbone: Encoder | str | dict[str, Any], device: str, precision: str
) -> tuple[Encoder, str, str]:
    """Load a named backbone on ``device``; an Encoder instance keeps its own settings for
    whichever of ``device`` / ``precision`` is ``"auto"``."""
    from ..backbones import load_backbone

    if isinstance(backbone, Encoder):
        enc = backbone
        if device != "auto" or precision != "auto":
            enc.to(
                enc.device if device == "auto" else device,
                precision=enc.precision if precision == "auto" else precision,
            )
    else:
        enc = load_backbone(backbone, device=device, precision=precision)
    return enc, str(enc.device), str(enc.precision)


def _hash_items(source: DataSource, on_error: OnError) -> tuple[list[bytes], list[tuple[int, str]]]:
    """Content hashes of every item; unreadable items raise, or are returned to be skipped."""
    try:
        return content_hashes(source), []
    except ItemError:
        if on_error == "raise":
            raise
    hashes: list[bytes] = []
    failed: list[tuple[int, str]] = []
    for i in range(len(source)):
        try:
            hashes.append(source.content_hash(i))
        except ItemError as e:
            log.warning("skipped %s: %s", e.item_id, e.reason)
            hashes.append(bytes(16))
            failed.append((i, e.reason))
    return hashes, failed


def _check_existing(
    store_path: Path, source: DataSource, hashes: list[bytes], writer: StoreWriter
) -> None:
    """A resumed store must hold only items of this dataset, unchanged, with the same classes."""
    if writer.classes != list(source.classes):
        raise StoreError(
            f"{str(store_path)!r} was encoded with classes {writer.classes[:10]} but the dataset "
            f"has {list(source.classes)[:10]}. Pass overwrite=True (CLI: --overwrite) to re-encode."
        )
    if writer.n_committed == 0:
        return
    with FeatureStore(store_path) as fs:
        stored = dict(zip(fs.ids.tolist(), (bytes(h) for h in fs.content_hashes), strict=True))
    current = {str(source.ids[i]): h for i, h in enumerate(hashes)}
    gone = [k for k in stored if k not in current]
    changed = [k for k, h in stored.items() if k in current and current[k] != h]
    if gone or changed:
        what = f"{len(gone)} items no longer in the dataset (e.g. {gone[:3]})" if gone else ""
        if changed:
            what += (
                "; " if what else ""
            ) + f"{len(changed)} items whose content changed (e.g. {changed[:3]})"
        raise StoreError(
            f"{str(store_path)!r} holds {what}. Its features would be stale or mixed: pass "
            "overwrite=True (CLI: --overwrite), or write to a new file with reuse_from=[old store] "
            "to copy the unchanged items' features."
        )


def encode(
    source: DataSource,
    backbone: Encoder | str | dict[str, Any],
    out: str | Path,
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    on_error: OnError = "raise",
    overwrite: bool = False,
    dtype: Literal["float32", "float16"] = "float32",
    reuse_from: Sequence[str | Path] = (),
    progress: bool = True,
) -> EncodeResult:
    """Encode a dataset into a feature store, resuming where an earlier run stopped.

    Parameters
    ----------
    source
        The items to encode (see :mod:`embedpipe.data`).
    backbone
        An :class:`~embedpipe.backbones.Encoder`, a registry name (``"minilm"``,
        ``"torchvision:resnet50"``) or a spec dict from a store's provenance.
    out
        The ``.h5`` store to write. If it exists with the same backbone fingerprint, the encode
        resumes: only the items it lacks are encoded. Another fingerprint is an error.
    batch_size, num_workers
        Items per forward pass; DataLoader worker processes for decoding (default: half the
        cores for images, in-process for text).
    device, precision
        ``"auto"`` picks CUDA when present (AMP), else CPU (bf16 where the CPU has native
        bf16); ``"fp32"`` forces float32. An :class:`~embedpipe.backbones.Encoder` passed in
        keeps the device / precision it was loaded with where these are ``"auto"``.
    on_error
        ``"raise"``: a bad item stops the encode with an :class:`~embedpipe.errors.ItemError`
        naming it (all batches before it are kept). ``"skip"``: it is logged, counted and
        recorded in the store's ``errors``.
    overwrite
        Replace an existing store instead of resuming it.
    dtype
        Feature dtype on disk (``float16`` halves the size).
    reuse_from
        Earlier stores of the same backbone: items whose content hash they hold are copied,
        not encoded again.
    progress
        Show a tqdm progress bar with items/s.

    Returns
    -------
    EncodeResult

    Examples
    --------
    >>> from embedpipe import encode, open_source
    >>> result = encode(open_source("builtin:digits"), "torchvision:mobilenet_v2",
    ...                 "cache/digits.h5")  # doctest: +SKIP
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error={on_error!r}; use 'raise' or 'skip'.")
    if batch_size <= 0:
        raise ConfigError(f"batch_size={batch_size}; it must be a positive integer.")
    t0 = time.perf_counter()
    out = Path(out)
    enc, dev, prec = _resolve_encoder(backbone, device, precision)
    n = len(source)
    ids = [str(source.ids[i]) for i in range(n)]
    hashes, unreadable = _hash_items(source, on_error)
    digest = source_digest(source, hashes)
    labels = np.asarray(source.labels, dtype=np.int64)

    if out.exists() and not overwrite:
        writer = StoreWriter.open_append(out, fingerprint=enc.fingerprint)
        try:
            _check_existing(out, source, hashes, writer)
        except BaseException:
            writer.close()
            raise
    else:
        writer = StoreWriter.create(
            out,
            dim=enc.dim,
            fingerprint=enc.fingerprint,
            backbone=enc.spec.to_dict(),
            dataset_digest=digest,
            classes=list(source.classes),
            dtype=dtype,
            extra={
                "source": source.describe(),
                "device": dev,
                "precision": prec,
                "batch_size": batch_size,
                "on_error": on_error,
            },
            overwrite=overwrite,
        )
    done = writer.committed_ids
    n_resumed = sum(1 for k in ids if k in done)
    bad = {i for i, _ in unreadable}
    todo = [i for i in range(n) if ids[i] not in done and i not in bad]
    bg = BackgroundWriter(writer)
    n_reused = n_encoded = 0
    n_skipped = len(unreadable)
    try:
        if unreadable:
            bg.put_errors([ids[i] for i, _ in unreadable], [r for _, r in unreadable])
        if reuse_from and todo:
            pool = ReusePool(reuse_from, enc.fingerprint, exclude=out)
            todo, n_reused = pool.copy_into(bg, todo, ids, hashes, labels)
        if enc.modality == "text":
            todo = text_order(source, enc, todo)
        workers = auto_workers(enc.modality) if num_workers is None else num_workers
        t_loop = time.perf_counter()
        bar = tqdm(
            total=len(todo),
            unit="item",
            desc=f"encode {out.name}",
            disable=not progress,
            dynamic_ncols=True,
        )
        with bar:
            for lb in iter_batches(
                source,
                enc,
                todo,
                batch_size=batch_size,
                num_workers=workers,
                pin_memory=dev.startswith("cuda"),
            ):
                if lb.failures:
                    if on_error == "raise":
                        i, reason = lb.failures[0]
                        raise ItemError(ids[i], reason)
                    for i, reason in lb.failures:
                        log.warning("skipped %s: %s", ids[i], reason)
                    bg.put_errors([ids[i] for i, _ in lb.failures], [r for _, r in lb.failures])
                    n_skipped += len(lb.failures)
                if lb.positions:
                    feats = enc.encode(lb.batch).float().numpy()
                    pos = lb.positions
                    bg.put_rows(feats, [ids[i] for i in pos], [hashes[i] for i in pos], labels[pos])
                    n_encoded += len(pos)
                bar.update(len(lb.positions) + len(lb.failures))
    except BaseException:
        try:
            bg.close()  # commit every batch that was handed over before the failure
        finally:
            writer.close()
        raise
    bg.close()
    encode_seconds = time.perf_counter() - t_loop
    writer.finalize(dataset_digest=digest, extra={"device": dev, "precision": prec})
    seconds = time.perf_counter() - t0
    result = EncodeResult(
        out,
        n,
        n_encoded,
        n_reused,
        n_resumed,
        n_skipped,
        seconds,
        encode_seconds,
        enc.fingerprint,
        dev,
        prec,
    )
    log.info("encoded %s: %s", out, result.to_dict())
    return result


def encode_items(encoder: Encoder, items: Sequence[Any], batch_size: int = 64) -> np.ndarray:
    """Encode raw items in memory (PIL images or strings), e.g. queries; no store is written.

    A bad item raises :class:`~embedpipe.errors.ItemError` naming its position.
    """
    samples = []
    for k, item in enumerate(items):
        try:
            samples.append(encoder.preprocess(item))
        except Exception as e:  # noqa: BLE001
            raise ItemError(f"#{k}", f"{type(e).__name__}: {e}") from e
    order = list(range(len(samples)))
    if encoder.modality == "text" and hasattr(encoder, "lengths"):
        lengths = encoder.lengths(list(items))  # type: ignore[attr-defined]
        order = sorted(order, key=lambda k: -lengths[k])
    out = np.empty((len(samples), encoder.dim), np.float32)
    for s in range(0, len(order), batch_size):
        chunk = order[s : s + batch_size]
        with torch.inference_mode():
            out[chunk] = (
                encoder.encode(encoder.collate([samples[k] for k in chunk])).float().numpy()
            )
    return out
