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
from typing import Any, Literal

import h5py
import numpy as np
from filelock import FileLock, Timeout
from tqdm.auto import tqdm

from ...backbones.base import BackboneSpec, Encoder
from ...data import content_hashes, digest, subset
from ...data.base import DataSource
from ...errors import ConfigError, FingerprintMismatchError, ItemError, StoreError
from ...store import FeatureStore
from ...store.shards import is_sharded, merge_shards, shards_dir
from ..engine import EncodeResult, encode
from .base import Executor
from .config import ExecutorConfig
from .factory import BackboneFactory, LoadFn
from .plan import Shard, plan_shards
from .registry import get_executor

log = logging.getLogger(__name__)

PARTIAL = ".partial"


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
    """An :class:`~embedpipe.encode.EncodeResult` of a sharded encode, plus per-shard detail.

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


@dataclass(frozen=True)
class EncodeSettings:
    batch_size: int
    num_workers: int | None
    device: str
    precision: str
    on_error: str
    dtype: str


class EncodeWorker:
    """Runs on a worker: holds the model (loaded once) and the source; encodes shards."""

    def __init__(
        self, factory: BackboneFactory, settings: EncodeSettings, source: DataSource
    ) -> None:
        self.encoder = factory.build()
        self.settings = settings
        self.source = source

    def __call__(self, task: ShardTask) -> ShardOutcome:
        t0 = time.perf_counter()
        final = Path(task.path)
        partial = final.with_name(final.name + PARTIAL)
        where = f"pid {os.getpid()} on {socket.gethostname()}"
        if final.is_file():  # an earlier try completed it, then lost its worker before replying
            return _existing_outcome(
                final, Shard(task.index, task.key, task.start, task.stop), self.encoder.fingerprint
            )
        _discard_unreadable(partial)
        s = self.settings
        res = encode(
            subset(self.source, np.arange(task.start, task.stop)),
            self.encoder,
            partial,
            batch_size=s.batch_size,
            num_workers=s.num_workers,
            device=s.device,
            precision=s.precision,
            on_error=s.on_error,  # type: ignore[arg-type]
            dtype=s.dtype,  # type: ignore[arg-type]
            reuse_from=task.reuse_from,
            progress=False,
        )
        os.replace(partial, final)
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


def _discard_unreadable(partial: Path) -> None:
    """A partial shard the dead writer left unreadable is started again (it was never complete)."""
    if not partial.exists():
        return
    try:
        FeatureStore(partial).close()
    except StoreError as e:
        log.warning("discarding unreadable partial shard %s (%s); encoding it again", partial, e)
        partial.unlink()


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


class _Hashed:
    """A source's ids, labels and classes with precomputed content hashes (for :func:`digest`)."""

    def __init__(self, source: DataSource, hashes: list[bytes]) -> None:
        self.ids, self.labels, self.classes, self._hashes = (
            source.ids,
            source.labels,
            source.classes,
            hashes,
        )

    def __len__(self) -> int:
        return len(self._hashes)

    def content_hashes(self) -> list[bytes]:
        return self._hashes


def _fingerprint_of(path: Path) -> str | None:
    try:
        with h5py.File(path, "r", libver="latest", swmr=True) as f:
            return str(f.attrs.get("fingerprint", ""))
    except OSError:
        return None


def _prepare_out(out: Path, fingerprint: str, overwrite: bool) -> None:
    """Refuse to mix backbones or to replace a single-file store; clear everything on overwrite."""
    sdir = shards_dir(out)
    if overwrite:
        if out.exists():
            out.unlink()
        if sdir.exists():
            shutil.rmtree(sdir)
        return
    hint = "Write to another file, or pass overwrite=True (CLI: --overwrite) to replace it."
    if out.exists():
        if not is_sharded(out):
            raise StoreError(
                f"{str(out)!r} exists and is a single-file store, not a sharded one. {hint}"
            )
        found = _fingerprint_of(out)
        if found != fingerprint:
            raise FingerprintMismatchError(
                f"cannot write sharded store {str(out)!r}", fingerprint, str(found), hint
            )
    if sdir.is_dir():
        for p in sorted(sdir.iterdir()):
            if p.name.endswith((".h5", ".h5" + PARTIAL)):
                found = _fingerprint_of(p)
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
    *,
    executor: Executor | ExecutorConfig | str | Mapping[str, Any] | None = None,
    n_shards: int | None = None,
    shard_size: int | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    on_error: Literal["raise", "skip"] = "raise",
    overwrite: bool = False,
    dtype: Literal["float32", "float16"] = "float32",
    reuse_from: Sequence[str | Path] = (),
    progress: bool = True,
    load: LoadFn | None = None,
) -> ShardedEncodeResult:
    """Encode a dataset as shards on an executor and merge them into one store.

    The items are split into contiguous shards whose file names are cache keys (a hash of
    the backbone fingerprint, dtype, classes and the shard's ids, content hashes and labels).
    Each worker encodes its shard with the same engine as :func:`~embedpipe.encode.encode`
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
    executor
        ``"local"`` (default, in this process), ``"ray"``, an :class:`ExecutorConfig`, its dict
        (``{"name": "ray", "num_workers": 4, "gpus_per_worker": 1}``) or an
        :class:`Executor` (not closed here: reuse one across encodes to start Ray once).
    n_shards, shard_size
        Split into ``n_shards`` near-equal shards, or shards of ``shard_size`` items (default
        8192; a fixed size keeps the early shards' keys when the dataset grows). Boundaries
        fall on multiples of ``batch_size`` so batches, hence features, match a one-process
        encode bit for bit; ``n_shards`` is thus at most ``ceil(n / batch_size)``.
    batch_size, num_workers, device, precision, on_error, dtype
        As for :func:`~embedpipe.encode.encode`, applied in every worker. ``num_workers`` is
        the DataLoader processes per worker (default: the executor's ``loader_workers``).
    overwrite
        Delete the master and every shard first.
    reuse_from
        Earlier stores of the same backbone to copy unchanged items from. Shards of an
        earlier run of this ``out`` that the new plan no longer has are added automatically
        (then deleted after the merge).
    progress
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
    >>> from embedpipe.data import open_source
    >>> res = encode_sharded(open_source("builtin:digits"), "resnet18", "cache/digits.h5",
    ...                      executor={"name": "ray", "num_workers": 2},
    ...                      n_shards=8)  # doctest: +SKIP
    """
    if on_error not in ("raise", "skip"):
        raise ConfigError(f"on_error={on_error!r}; use 'raise' or 'skip'.")
    if batch_size <= 0:
        raise ConfigError(f"batch_size={batch_size}; it must be a positive integer.")
    if dtype not in ("float32", "float16"):
        raise ConfigError(f"dtype={dtype!r}; use 'float32' or 'float16'.")
    t0 = time.perf_counter()
    out = Path(out).absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    ex, owned = _as_executor(executor)
    lock = FileLock(str(out) + ".lock")
    try:
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise StoreError(
                f"another encode is writing {str(out)!r} (lock {lock.lock_file}); wait for it to "
                "finish. The lock is released when that process exits."
            ) from None
        try:
            return _run(
                source,
                backbone,
                out,
                ex,
                n_shards=n_shards,
                shard_size=shard_size,
                overwrite=overwrite,
                reuse_from=reuse_from,
                progress=progress,
                load=load,
                t0=t0,
                settings=EncodeSettings(
                    batch_size, _loader_workers(num_workers, ex), device, precision, on_error, dtype
                ),
            )
        finally:
            lock.release()
    finally:
        if owned:
            ex.close()


def _loader_workers(num_workers: int | None, ex: Executor) -> int | None:
    """DataLoader processes per worker: as asked, else the executor's setting; on a cluster
    0 by default, since its workers already fill the CPUs they reserve."""
    if num_workers is not None:
        return num_workers
    if ex.config.loader_workers is not None or ex.name == "local":
        return ex.config.loader_workers
    return 0


def _run(
    source: DataSource,
    backbone: Any,
    out: Path,
    ex: Executor,
    *,
    n_shards: int | None,
    shard_size: int | None,
    overwrite: bool,
    reuse_from: Sequence[str | Path],
    progress: bool,
    load: LoadFn | None,
    t0: float,
    settings: EncodeSettings,
) -> ShardedEncodeResult:
    factory, _ = BackboneFactory.resolve(backbone, load)
    fp = factory.fingerprint
    _prepare_out(out, fp, overwrite)
    ids = [str(i) for i in source.ids]
    hashes = content_hashes(source)
    plan = plan_shards(
        ids,
        hashes,
        source.labels,
        list(source.classes),
        fingerprint=fp,
        dtype=settings.dtype,
        n_shards=n_shards,
        shard_size=shard_size,
        align=settings.batch_size,
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
    if settings.on_error == "raise":
        _raise_recorded_errors([outcomes[k] for k in sorted(outcomes)])
    keys = {sh.key for sh in plan}
    stale = [p for p in sorted(sdir.glob("*.h5")) if p.stem not in keys]
    # Items of shards the plan no longer has (the dataset grew or changed) are copied, not re-encoded.
    stale_ok = tuple(str(p) for p in stale if _fingerprint_of(p) == fp)
    reuse = tuple(str(Path(p).absolute()) for p in reuse_from) + stale_ok
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
        if ex.name != "local":
            factory.release()  # the workers load their own copy; free the driver's
        make_worker = functools.partial(EncodeWorker, factory, settings)
        done = sum(o.n_items for o in outcomes.values())
        for c in _progress(
            ex.map(make_worker, tasks, shared=source),
            len(ids),
            done,
            progress,
            f"encode {out.name}",
        ):
            o: ShardOutcome = c.value
            o.attempts = c.attempts
            outcomes[o.index] = o
        encode_seconds = time.perf_counter() - t_map
    ordered = [outcomes[sh.index] for sh in plan]
    if settings.on_error == "raise":
        _raise_recorded_errors(ordered)
    merge_shards(
        out,
        [o.path for o in ordered],
        dataset_digest=digest(_Hashed(source, hashes)),  # type: ignore[arg-type]
        extra={
            "source": source.describe(),
            **ex.describe(),
            "batch_size": settings.batch_size,
            "on_error": settings.on_error,
        },
    )
    _remove_stale(sdir, keys)
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
    log.info("encoded %s: %s", out, {k: v for k, v in result.to_dict().items() if k != "shards"})
    return result


def _raise_recorded_errors(outcomes: Sequence[ShardOutcome]) -> None:
    """With on_error='raise', an item a shard skipped earlier (under 'skip') is an error now."""
    for o in outcomes:
        if o.n_skipped:
            with FeatureStore(o.path) as fs:
                item_id, reason = fs.errors[0]
            raise ItemError(item_id, f"{reason} (recorded in shard {Path(o.path).name})")


def _remove_stale(sdir: Path, keys: set[str]) -> None:
    """Delete shard files the new master does not use (older plans, leftovers of dead writers)."""
    for p in sdir.iterdir():
        name = p.name
        if name.endswith(".h5") and p.stem in keys:
            continue
        if name.endswith((".h5", ".h5" + PARTIAL, ".creating", ".recover")):
            p.unlink(missing_ok=True)
