"""Sharded encoding: split a dataset into deterministic shards, encode each on a worker into
its own store, and merge them into one logical store (a master of HDF5 virtual datasets).

A shard is written to ``<key>.h5.partial`` by the engine (crash-safe, resumable) and renamed
to ``<key>.h5`` when complete. A complete shard is never written again: a re-run after a crash
skips it, resumes a partial shard from its committed rows, and encodes the rest.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import socket
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..backbones.base import BackboneSpec, Encoder
from ..data import content_hashes, digest, subset
from ..data.base import DataSource
from ..errors import Arg, ConfigError, FingerprintMismatchError, Fix, ItemError, StoreError
from ..executors import Executor, ExecutorConfig, get_executor
from ..store import FeatureStore
from ..store.lock import StoreLock
from ..store.shards import (
    discard_unreadable,
    finish_shard,
    is_sharded,
    merge_shards,
    partial_path,
    peek_fingerprint,
    remove_stale,
    shard_files,
    shards_dir,
    stale_shards,
)
from .engine import encode_file
from .factory import BackboneFactory, LoadFn
from .options import EncodeOptions
from .plan import Shard, plan_shards
from .result import EncodeResult, log_summary

log = logging.getLogger(__name__)


@dataclass
class ShardOutcome:
    """What happened to one shard. ``cached``: it was complete before this run."""

    index: int
    key: str
    path: str
    n_items: int
    n_rows: int
    n_encoded: int
    n_reused: int
    n_resumed: int
    n_skipped: int
    seconds: float
    device: str
    precision: str
    cached: bool = False
    attempts: int = 1
    worker: str = ""


@dataclass
class ShardedEncodeResult(EncodeResult):
    """An :class:`~embedpipe.encoding.EncodeResult` of a sharded encode, plus per-shard detail.

    ``n_resumed`` counts rows already in complete shards or in resumed partial shards;
    ``encode_seconds`` is the wall time of the parallel phase (workers' start-up included), so
    ``items_per_s`` is the aggregate rate.
    """

    executor: str = "local"
    n_shards: int = 0
    n_shards_cached: int = 0
    shards: list[ShardOutcome] = field(default_factory=list)


@dataclass(frozen=True)
class ShardTask:
    """One shard to encode: items ``start:stop`` into ``path`` (absolute)."""

    index: int
    key: str
    start: int
    stop: int
    path: str
    reuse_from: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"shard {self.index} ({self.stop - self.start} items) -> {Path(self.path).name}"


class EncodeWorker:
    """Runs on a worker: holds the model (loaded once) and the source; encodes shards."""

    def __init__(
        self, factory: BackboneFactory, options: EncodeOptions, source: DataSource
    ) -> None:
        self.encoder = factory.build(
            options.device, options.precision, options.runtime, options.runtime_min_cosine
        )
        self.options = options
        self.source = source

    def __call__(self, task: ShardTask) -> ShardOutcome:
        t0 = time.perf_counter()
        final = Path(task.path)
        partial = partial_path(final)
        where = f"pid {os.getpid()} on {socket.gethostname()}"
        if final.is_file():  # an earlier try completed it, then lost its worker before replying
            return _existing_outcome(
                final, Shard(task.index, task.key, task.start, task.stop), self.encoder.fingerprint
            )
        if discard_unreadable(partial):
            log.warning("discarded unreadable partial shard %s; encoding it again", partial)
        res = encode_file(
            subset(self.source, np.arange(task.start, task.stop)),
            self.encoder,
            partial,
            self.options.replace(reuse_from=task.reuse_from),
        )
        finish_shard(partial, final)
        n_rows = res.n_encoded + res.n_reused + res.n_resumed
        return ShardOutcome(
            task.index,
            task.key,
            str(final),
            task.stop - task.start,
            n_rows,
            res.n_encoded,
            res.n_reused,
            res.n_resumed,
            res.n_skipped,
            time.perf_counter() - t0,
            res.device,
            res.precision,
            worker=where,
        )


def _existing_outcome(path: Path, shard: Shard, fingerprint: str) -> ShardOutcome:
    """Check a complete shard file left by an earlier run and describe it (it is not rewritten)."""
    try:
        fs = FeatureStore(path)
    except StoreError as e:
        raise StoreError(
            f"complete shard {str(path)!r} cannot be read ({e}); delete it and run the encode again."
        ) from e
    with fs:
        fs.check_fingerprint(fingerprint, what="shard")
        n_rows, n_err = len(fs), len(fs.errors)
        extra = fs.provenance.get("extra", {})
        if not fs.complete or n_rows + n_err != shard.size:
            raise StoreError(
                f"shard {str(path)!r} should hold {shard.size} items but holds {n_rows} rows and "
                f"{n_err} skipped items ({'complete' if fs.complete else 'incomplete'}); delete "
                "it and run the encode again."
            )
    return ShardOutcome(
        shard.index,
        shard.key,
        str(path),
        shard.size,
        n_rows,
        0,
        0,
        n_rows,
        n_err,
        0.0,
        str(extra.get("device", "")),
        str(extra.get("precision", "")),
        cached=True,
    )


def _prepare_out(out: Path, fingerprint: str, overwrite: bool) -> None:
    """Refuse to mix backbones or to replace a single-file store; clear everything on overwrite."""
    sdir = shards_dir(out)
    if overwrite:
        if out.exists():
            out.unlink()
        if sdir.exists():
            shutil.rmtree(sdir)
        return
    hint = ("Write to another file", Fix(", or pass ", overwrite=True, does=" to replace it"), ".")
    if out.exists():
        if not is_sharded(out):
            raise StoreError(
                f"{str(out)!r} exists and is a single-file store, not a sharded one. ", *hint
            )
        found = peek_fingerprint(out)
        if found != fingerprint:
            raise FingerprintMismatchError(
                f"cannot write sharded store {str(out)!r}", fingerprint, str(found), hint
            )
    for p in shard_files(sdir):
        found = peek_fingerprint(p)
        if found is not None and found != fingerprint:
            raise FingerprintMismatchError(
                f"shard {str(p)!r} of {str(out)!r}", fingerprint, found, hint
            )


def _as_executor(
    executor: Executor | ExecutorConfig | str | Mapping[str, Any] | None,
) -> tuple[Executor, bool]:
    """The executor to use, and whether this call owns it (and must close it)."""
    if isinstance(executor, Executor):
        return executor, False
    return get_executor(executor), True


def _progress(
    outcomes: Iterator[Any], total: int, initial: int, show: bool, desc: str
) -> Iterator[Any]:
    with tqdm(
        total=total, initial=initial, unit="item", desc=desc, disable=not show, dynamic_ncols=True
    ) as bar:
        for c in outcomes:
            bar.update(c.value.n_items)
            yield c


def encode_sharded(
    source: DataSource,
    backbone: Encoder | BackboneSpec | str | Mapping[str, Any],
    out: str | Path,
    options: EncodeOptions | Mapping[str, Any] | None = None,
    *,
    executor: Executor | ExecutorConfig | str | Mapping[str, Any] | None = None,
    load: LoadFn | None = None,
    **overrides: Any,
) -> ShardedEncodeResult:
    """Encode a dataset as shards on an executor and merge them into one store.

    The items are split into contiguous shards whose file names are cache keys (a hash of
    the backbone fingerprint, dtype, classes and the shard's ids, content hashes and labels).
    Each worker encodes its shard with the same engine as :func:`~embedpipe.encoding.encode`
    into a temporary file renamed when complete; then ``out`` is (re)written as a master of
    virtual datasets over ``<out stem>.shards/``. Rows are in shard order, which for image
    sources is the source order; the features equal a one-process encode's.

    Parameters
    ----------
    source
        The items (see :mod:`embedpipe.data`). Workers receive it once; on a cluster its
        files must be at the same absolute paths on every node.
    backbone
        An :class:`~embedpipe.backbones.Encoder`, a registry name, or a spec dict. Workers
        rebuild it from its spec (never receive a model object) and check its fingerprint.
    out
        The master ``.h5`` file; shards go to the folder beside it, which every worker must
        be able to reach (a shared filesystem on a cluster).
    options, **overrides
        :class:`~embedpipe.encoding.EncodeOptions` (or its fields as keywords), applied in
        every worker; ``num_workers`` is the DataLoader processes per worker (default: the
        executor's ``loader_workers``).
    executor
        ``"local"`` (default, in this process), ``"ray"``, an :class:`ExecutorConfig`, its dict
        (``{"name": "ray", "num_workers": 4, "gpus_per_worker": 1}``) or an
        :class:`Executor` (not closed here: reuse one across encodes to start Ray once).
    options.n_shards, options.shard_size
        Split into ``n_shards`` near-equal shards, or shards of ``shard_size`` items (default
        8192; a fixed size keeps the early shards' keys when the dataset grows). Boundaries
        fall on multiples of ``batch_size`` so batches, hence features, match a one-process
        encode bit for bit; ``n_shards`` is thus at most ``ceil(n / batch_size)``.
    options.overwrite
        Delete the master and every shard first.
    options.reuse_from
        Earlier stores of the same backbone to copy unchanged items from. Shards of an
        earlier run of this ``out`` that the new plan no longer has are added automatically
        (then deleted after the merge).
    options.progress
        A progress bar over items, advanced as shards complete.
    load
        ``load(spec) -> Encoder`` used by workers (default
        :func:`embedpipe.backbones.load_backbone`).

    Returns
    -------
    ShardedEncodeResult

    Raises
    ------
    ItemError
        A bad item with ``on_error="raise"`` (earlier complete shards are kept).
    StoreError, FingerprintMismatchError
        ``out`` holds another backbone's features, a single-file store, or a damaged shard.
    WorkerLostError
        A shard's worker died ``max_attempts`` times.

    Examples
    --------
    >>> from embedpipe import load_backbone, open_source
    >>> from embedpipe.store.shards import shard_paths
    >>> enc = load_backbone("torchvision:resnet18", weights=None, crop_size=32, resize_size=32)
    >>> res = encode_sharded(open_source("builtin:digits?limit=20"), enc, "digits.h5",
    ...                      n_shards=2, batch_size=8, progress=False)
    >>> res.n_shards, res.n_encoded, len(shard_paths("digits.h5"))
    (2, 20, 2)
    """
    opts = EncodeOptions.of(options, **overrides)
    if opts.runtime == "auto":
        raise ConfigError(
            Arg("runtime", "auto"),
            " chooses per process, and shards must agree: name the runtime (",
            Arg("runtime", "openvino"),
            ", 'onnxruntime' or 'torch') for a sharded encode.",
        )
    t0 = time.perf_counter()
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    ex, owned = _as_executor(executor)
    lock = StoreLock(out, wait=opts.wait)
    try:
        lock.acquire()
        try:
            return _run(
                source,
                backbone,
                out,
                ex,
                opts,
                load=load,
                t0=t0,
            )
        finally:
            lock.release()
    finally:
        if owned:
            ex.close()


def _loader_workers(num_workers: int | None, ex: Executor) -> int | None:
    """DataLoader processes per worker: as asked, else the executor's setting; in this
    process the engine's default; on worker processes their share of this machine's cores
    (a local GPU worker needs decoders), on a cluster 0, since its workers fill their CPUs."""
    if num_workers is not None:
        return num_workers
    if ex.config.loader_workers is not None or ex.in_process:
        return ex.config.loader_workers
    if ex.name == "local":
        return max(0, (os.cpu_count() or 2) // ex.parallelism - 1)
    return 0


def _run(
    source: DataSource,
    backbone: Any,
    out: Path,
    ex: Executor,
    opts: EncodeOptions,
    *,
    load: LoadFn | None,
    t0: float,
) -> ShardedEncodeResult:
    factory, driver_enc = BackboneFactory.resolve(backbone, load)
    fp = factory.fingerprint
    _prepare_out(out, fp, opts.overwrite)
    ids = [str(i) for i in source.ids]
    hashes = content_hashes(source)
    plan = plan_shards(
        ids,
        hashes,
        source.labels,
        list(source.classes),
        fingerprint=fp,
        dtype=opts.dtype,
        n_shards=opts.n_shards,
        shard_size=opts.shard_size,
        align=opts.batch_size,
    )
    sdir = shards_dir(out)
    sdir.mkdir(parents=True, exist_ok=True)
    outcomes: dict[int, ShardOutcome] = {}
    todo: list[Shard] = []
    for sh in plan:
        path = sdir / sh.file_name
        if path.is_file():
            outcomes[sh.index] = _existing_outcome(path, sh, fp)
        else:
            todo.append(sh)
    if opts.on_error == "raise":
        _raise_recorded_errors([outcomes[k] for k in sorted(outcomes)])
    keys = {sh.key for sh in plan}
    # Items of shards the plan no longer has (the dataset grew or changed) are copied, not re-encoded.
    stale_ok = tuple(str(p) for p in stale_shards(sdir, keys) if peek_fingerprint(p) == fp)
    reuse = tuple(str(Path(p).absolute()) for p in opts.reuse_from) + stale_ok
    tasks = [
        ShardTask(sh.index, sh.key, sh.start, sh.stop, str(sdir / sh.file_name), reuse)
        for sh in todo
    ]
    log.info(
        "%s: %d shards, %d complete, %d to encode on %s",
        out,
        len(plan),
        len(outcomes),
        len(tasks),
        ex.name,
    )
    encode_seconds = 0.0
    if tasks:
        t_map = time.perf_counter()
        if not ex.in_process:
            factory.release()  # the workers load their own copy; free the driver's
        # One precision for every shard: "auto" is settled once, by the driver's encoder.
        precision = opts.precision
        if precision == "auto" and driver_enc is not None:
            precision = str(driver_enc.precision)
        worker_opts = opts.replace(
            precision=precision,
            num_workers=_loader_workers(opts.num_workers, ex),
            overwrite=False,
            progress=False,
        )
        make_worker = functools.partial(EncodeWorker, factory, worker_opts)
        done = sum(o.n_items for o in outcomes.values())
        for c in _progress(
            ex.map(make_worker, tasks, shared=source),
            len(ids),
            done,
            opts.progress,
            f"encode {out.name}",
        ):
            o: ShardOutcome = c.value
            o.attempts = c.attempts
            outcomes[o.index] = o
        encode_seconds = time.perf_counter() - t_map
    ordered = [outcomes[sh.index] for sh in plan]
    if opts.on_error == "raise":
        _raise_recorded_errors(ordered)
    merge_shards(
        out,
        [o.path for o in ordered],
        dataset_digest=digest(source, hashes),
        extra={
            "source": source.describe(),
            **ex.describe(),
            "batch_size": opts.batch_size,
            "on_error": opts.on_error,
        },
    )
    remove_stale(sdir, keys)
    first = next((o for o in ordered if o.device), None)
    result = ShardedEncodeResult(
        path=out,
        n_items=len(ids),
        n_encoded=sum(o.n_encoded for o in ordered),
        n_reused=sum(o.n_reused for o in ordered),
        n_resumed=sum(o.n_resumed for o in ordered),
        n_skipped=sum(o.n_skipped for o in ordered),
        seconds=time.perf_counter() - t0,
        encode_seconds=encode_seconds,
        fingerprint=fp,
        device=first.device if first else "",
        precision=first.precision if first else "",
        executor=ex.name,
        n_shards=len(plan),
        n_shards_cached=sum(o.cached for o in ordered),
        shards=ordered,
    )
    log_summary(log, result)
    return result


def _raise_recorded_errors(outcomes: Sequence[ShardOutcome]) -> None:
    """With on_error='raise', an item a shard skipped earlier (under 'skip') is an error now."""
    for o in outcomes:
        if o.n_skipped:
            with FeatureStore(o.path) as fs:
                item_id, reason = fs.errors[0]
            raise ItemError(item_id, f"{reason} (recorded in shard {Path(o.path).name})")
