"""The extraction engine of one store file: loader → frozen backbone → HDF5 writer.

:func:`encode_file` is what :func:`~embedpipe.encoding.dispatch.encode` runs for an unsharded
encode and what each shard worker runs on its shard; :func:`encode_items` encodes items in
memory (queries, predict, the server) on the same text path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..backbones.base import Encoder, as_text_encoder, check_encodes, device_forward
from ..backbones.runtimes import (
    CALIBRATION_ITEMS,
    keep_torch,
    pin_runtime,
    requested_runtime,
    runtime_info,
    runtime_label,
    torch_precision,
)
from ..data.base import DataSource, content_hashes
from ..data.base import digest as source_digest
from ..errors import (
    Arg,
    ConfigError,
    DiskFullError,
    Fix,
    Interrupted,
    ItemError,
    StoreError,
    raise_if_stopped,
)
from ..store import FeatureStore, StoreWriter
from ..store.lock import StoreLock
from ..store.space import is_no_space
from .compile import Compiler
from .forward import InFlight, OomGuard, prefetch_to_device
from .heap import HeapTrimmer
from .loader import (
    LoadedBatch,
    auto_workers,
    iter_batches,
    iter_token_batches,
    prepare_items,
    sorted_token_batches,
)
from .options import EncodeOptions, OnError
from .result import EncodeResult, log_summary
from .reuse import ReusePool
from .rows import SourceRows
from .writer_thread import BackgroundWriter

log = logging.getLogger(__name__)


#: ``runtime="auto"`` races the runtimes only for an encode of at least this many batches.
#: Settling costs about five batches of torch-equivalent work (a torch fp32 reference forward,
#: each candidate compiled and run once: measured in benchmarks/results/encode-runtimes.md,
#: where one-batch encodes ran 0.2-0.5x torch); a runtime 3x faster saves 2/3 of a batch per
#: batch, so it repays that from about 8 batches on.
AUTO_MIN_BATCHES = 8


def settle_runtime(
    enc: Encoder,
    source: DataSource,
    opts: EncodeOptions,
    out: Path | None = None,
    skip: set[int] | frozenset[int] = frozenset(),
) -> str:
    """Settle the runtime of ``enc`` before a store is opened, and return the store's
    precision label (see :func:`embedpipe.backbones.runtimes.runtime_label`).

    A runtime other than torch is decided (``"auto"``) and checked for fidelity on a
    calibration batch: the user's own first items (``skip``: positions that cannot be read).
    ``runtime="auto"`` extending an existing store ``out`` keeps the runtime it recorded,
    and keeps torch for an encode of fewer than :data:`AUTO_MIN_BATCHES` batches.
    """
    label = runtime_label(enc)
    if label:
        return label
    if out is not None and out.exists() and not opts.overwrite:
        try:
            with FeatureStore(out) as fs:
                pin_runtime(enc, fs.precision)
        except Exception:  # noqa: BLE001 - the store's own checks report a bad file later
            pass
    label = runtime_label(enc)
    if label:
        return label
    n_batches = -(-(len(source) - len(skip)) // opts.batch_size)
    if requested_runtime(enc) == "auto" and n_batches < AUTO_MIN_BATCHES:
        keep_torch(
            enc,
            f"torch {torch_precision(enc)} (auto: {n_batches} batches, under "
            f"{AUTO_MIN_BATCHES}: too few to repay a calibration)",
        )
        return runtime_label(enc)
    first = [i for i in range(len(source)) if i not in skip][
        : min(opts.batch_size, CALIBRATION_ITEMS)
    ]
    device = torch.device(str(enc.device))
    for lb in _batches(source, enc, first, opts.replace(num_workers=0), device):
        if lb.positions:
            enc.encode(lb.batch)  # the first call calibrates
            break
    label = runtime_label(enc)
    if not label:  # nothing readable to calibrate on: torch
        pin_runtime(enc, torch_precision(enc))
        label = runtime_label(enc)
    return label


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
            f"has {list(source.classes)[:10]}.",
            Fix(" Pass ", overwrite=True, does=" to re-encode."),
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
            f"{str(store_path)!r} holds {what}. Its features would be stale or mixed: write to a "
            "new file",
            Fix(" with ", Arg("reuse_from", py="[old store]", cli="OLD_STORE")),
            " to copy the unchanged items' features",
            Fix(", or pass ", overwrite=True, does=" to encode again"),
            ".",
        )


def _rows_kept(out: Path) -> int | None:
    """Committed rows of a store left by a failed encode (None when it cannot be read)."""
    try:
        with FeatureStore(out) as fs:
            return len(fs)
    except Exception:  # noqa: BLE001 - only for the message
        return None


def encode_file(source: DataSource, enc: Encoder, out: Path, opts: EncodeOptions) -> EncodeResult:
    """Encode ``source`` with ``enc`` (already on its device, precision and runtime: see
    :func:`~embedpipe.backbones.registry.resolve_encoder`) into the one store file ``out``,
    in this process, resuming what ``out`` already holds: what :func:`~embedpipe.encode`
    runs unsharded, and what each shard worker runs on its shard.

    Raises
    ------
    DiskFullError
        The disk filled up (the message says how many rows ``out`` kept).
    """
    try:
        return _encode_file(source, enc, out, opts)
    except DiskFullError:
        raise
    except (OSError, RuntimeError) as e:
        if not is_no_space(e):
            raise
        raise DiskFullError(out, _rows_kept(out)) from e


def _encode_file(source: DataSource, enc: Encoder, out: Path, opts: EncodeOptions) -> EncodeResult:
    t0 = time.perf_counter()
    on_error: OnError = opts.on_error
    dev = str(enc.device)
    check_encodes(enc, source.modality)
    n = len(source)
    ids = [str(source.ids[i]) for i in range(n)]
    hashes, unreadable = _hash_items(source, on_error)
    digest = source_digest(source, hashes)
    if n == 0 and not opts.allow_empty:
        raise ConfigError(
            f"the dataset is empty ({source.describe().get('kind')}): nothing to encode into "
            f"{str(out)!r}. Check its path, columns and filters",
            Fix(", or pass ", allow_empty=True, does=" to write an empty store"),
            ".",
        )
    prec = settle_runtime(enc, source, opts, out, {i for i, _ in unreadable})

    rows = SourceRows(source, ids, hashes)

    # One writer per store: the lock is taken before deciding between resume and create.
    lock = StoreLock(out, wait=opts.wait).acquire()
    if out.exists() and not opts.overwrite:
        writer = StoreWriter.open_append(
            out,
            fingerprint=enc.fingerprint,
            precision=prec,
            allow_mixed_precision=opts.allow_mixed_precision,
            lock=lock,
        )
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
            dtype=opts.dtype,
            extra={
                "source": source.describe(),
                "device": dev,
                "precision": prec,
                "runtime": runtime_info(enc),
                "batch_size": opts.batch_size,
                "on_error": on_error,
            },
            overwrite=opts.overwrite,
            precision=prec,
            columns=list(rows.kept),
            lock=lock,
        )
    done = writer.committed_ids
    n_resumed = sum(1 for k in ids if k in done)
    bad = {i for i, _ in unreadable}
    todo = [i for i in range(n) if ids[i] not in done and i not in bad]
    device = torch.device(dev)
    bg = BackgroundWriter(
        writer, in_thread=device.type != "cpu", commit_interval=opts.commit_interval
    )
    n_reused = n_encoded = 0
    n_skipped = len(unreadable)
    compiler = Compiler(enc, opts.compile, -(-len(todo) // opts.batch_size))
    in_flight = keeps_one_in_flight(device, enc)
    guard = OomGuard((device_forward(enc) if in_flight else None) or enc.encode)
    trimmer = HeapTrimmer()

    def commit(pos: list[int], feats: np.ndarray) -> None:
        nonlocal n_encoded
        bg.put_rows(rows.take(pos, feats))
        n_encoded += len(pos)
        trimmer.tick()

    pending = InFlight(commit, depth=1 if in_flight else 0)
    steps = {"forward": 0.0, "write": 0.0}
    t_loop = time.perf_counter()
    try:
        if unreadable:
            bg.put_errors([ids[i] for i, _ in unreadable], [r for _, r in unreadable])
        if opts.reuse_from and todo:
            pool = ReusePool(
                opts.reuse_from,
                enc.fingerprint,
                exclude=out,
                precision=prec,
                allow_mixed_precision=opts.allow_mixed_precision,
            )
            todo, n_reused = pool.copy_into(bg, todo, rows)
        t_loop = time.perf_counter()
        bar = tqdm(
            total=len(todo),
            unit="item",
            desc=f"encode {out.name}",
            disable=not opts.progress,
            dynamic_ncols=True,
        )
        first = True
        first_skip = (ids[unreadable[0][0]], unreadable[0][1]) if unreadable else None
        with bar:
            for lb in _batches(source, enc, todo, opts, device, steps):
                raise_if_stopped()
                if lb.failures:
                    if on_error == "raise":
                        i, reason = lb.failures[0]
                        raise ItemError(ids[i], reason)
                    for i, reason in lb.failures:
                        log.warning("skipped %s: %s", ids[i], reason)
                        first_skip = first_skip or (ids[i], reason)
                    bg.put_errors([ids[i] for i, _ in lb.failures], [r for _, r in lb.failures])
                    n_skipped += len(lb.failures)
                if lb.positions:
                    t = time.perf_counter()
                    if first:
                        feats_t = compiler.first(guard, lb.batch)
                        first = False
                    else:
                        feats_t = guard(lb.batch)
                    t1 = time.perf_counter()
                    pending.push(lb.positions, feats_t)
                    steps["forward"] += t1 - t
                    steps["write"] += time.perf_counter() - t1
                bar.update(len(lb.positions) + len(lb.failures))
            pending.flush()
    except BaseException as exc:
        compiler.close()
        try:
            try:
                pending.flush()  # a batch whose forward finished is kept
            finally:
                bg.close()  # commit every batch that was handed over before the failure
        finally:
            n_kept = writer.n_committed
            writer.close()
        if isinstance(exc, (KeyboardInterrupt, Interrupted)):
            log.warning(
                "interrupted: %s keeps %s of %s items; run the same encode again to resume",
                out,
                f"{n_kept:,}",
                f"{n:,}",
            )
        raise
    compiler.close()
    bg.close()
    if n and n_skipped == n and first_skip is not None:
        writer.close()  # not marked complete: a store of skips alone is of no use
        raise StoreError(
            f"all {n} items were skipped (the first, {first_skip[0]!r}: {first_skip[1]}): "
            f"nothing was encoded, so {str(out)!r} is left incomplete; fix the data and run "
            "again (the skipped items are retried)"
        )
    encode_seconds = time.perf_counter() - t_loop
    writer.finalize(
        dataset_digest=digest,
        extra={"device": dev, "precision": prec, "runtime": runtime_info(enc)},
        n_source_items=n,
        source_ids=ids,
    )
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
        runtime=str(runtime_info(enc).get("reason") or ""),
        steps={k: round(v, 3) for k, v in steps.items()},
    )
    log_summary(log, result)
    return result


def keeps_one_in_flight(device: torch.device, encoder: Encoder) -> bool:
    """Whether the encode loop launches batch ``i + 1`` before it stores batch ``i`` (see
    :class:`~embedpipe.encoding.forward.InFlight`): on CUDA, for an encoder that can hand back
    its features still on the device. On a CPU the forward is synchronous: nothing would
    overlap, and the store would only trail one batch behind."""
    return device.type == "cuda" and device_forward(encoder) is not None


def _batches(
    source: DataSource,
    enc: Encoder,
    todo: list[int],
    opts: EncodeOptions,
    device: torch.device,
    steps: dict[str, float] | None = None,
) -> Iterator[LoadedBatch]:
    """The encode's batches, in order, ready for the model (already on the device when it is
    a GPU); on a CPU, the seconds each step took are added to ``steps``."""
    workers = (
        auto_workers(enc.modality, str(device)) if opts.num_workers is None else opts.num_workers
    )
    pin = device.type == "cuda"
    if enc.modality == "text":
        it = iter_token_batches(
            source,
            as_text_encoder(enc),
            todo,
            batch_size=opts.batch_size,
            num_workers=workers,
            pin_memory=pin,
        )
    elif opts.decode_device is not None:
        from .decode import iter_decoded_batches

        it = iter_decoded_batches(
            source,
            enc,
            todo,
            batch_size=opts.batch_size,
            num_workers=workers,
            decode_device=opts.decode_device,
        )
    else:
        it = iter_batches(
            source, enc, todo, batch_size=opts.batch_size, num_workers=workers, pin_memory=pin
        )

    def put(lb: LoadedBatch, moved: Any) -> None:
        lb.batch = moved
        lb.finished()  # on the copy's stream: an image batch is normalised on the GPU

    if device.type == "cuda":
        return prefetch_to_device(it, device, lambda lb: lb.batch, put)
    return _finished(it, steps)


def _finished(it: Iterator[LoadedBatch], steps: dict[str, float] | None) -> Iterator[LoadedBatch]:
    """Each batch finished in the main process; its workers' and this step's seconds are added
    to ``steps`` (``"normalize"``: the main process's share of the preprocessing)."""
    for lb in it:
        t = time.perf_counter()
        finishing = lb.finish is not None
        lb.finished()
        if steps is not None:
            for k, v in lb.seconds.items():
                steps[k] = steps.get(k, 0.0) + v
            if finishing:
                steps["normalize"] = steps.get("normalize", 0.0) + time.perf_counter() - t
        yield lb


def encode_items(encoder: Encoder, items: Sequence[Any], batch_size: int = 64) -> np.ndarray:
    """Encode raw items in memory (PIL images or strings), e.g. queries; no store is written.

    Texts take the encode's own text path (checked, tokenised once, sorted by token count,
    batched by :func:`~embedpipe.encoding.loader.sorted_token_batches`), so a store's rows and
    this function's agree for the same texts and batch size. A bad item raises
    :class:`~embedpipe.errors.ItemError` naming its position.
    """
    positions = range(len(items))
    batches: Iterable[LoadedBatch]
    if encoder.modality == "text":
        text = as_text_encoder(encoder)
        good, tokens, failures = prepare_items(
            text.preprocess, items.__getitem__, positions, text.tokenize
        )
        batches = sorted_token_batches(good, tokens, batch_size, text.collate_tokens)
    else:
        good, samples, failures = prepare_items(encoder.preprocess, items.__getitem__, positions)
        batches = (
            LoadedBatch(good[s : s + batch_size], encoder.collate(samples[s : s + batch_size]))
            for s in range(0, len(good), batch_size)
        )
    if failures:
        raise ItemError(f"#{failures[0][0]}", failures[0][1])
    out = np.empty((len(items), encoder.dim), np.float32)
    for lb in batches:
        with torch.inference_mode():
            out[lb.positions] = encoder.encode(lb.batch).float().numpy()
    return out
