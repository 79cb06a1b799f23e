"""Running a pipeline: keys first, then each stage in dependency order, reusing the cache."""

from __future__ import annotations

import importlib
import logging
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from filelock import Timeout

from ..errors import ConfigError
from .cache import Cache, default_cache_dir, write_json_atomic
from .context import Entry, StageContext, seed_everything
from .executor import RunExecutor
from .manifest import MANIFEST_SCHEMA, file_digest, git_info, library_versions, new_run_id, now
from .pipeline import Pipeline, StageKey

log = logging.getLogger("embedpipe.pipeline")

Status = Literal["hit", "miss", "forced", "failed"]


@dataclass
class StageRun:
    """What happened to one stage in a run."""

    name: str
    kind: str
    key: str
    status: Status
    seconds: float
    seed: int
    path: Path
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    waited: float = 0.0

    @property
    def hit(self) -> bool:
        return self.status == "hit"

    def to_dict(self, cache_root: Path) -> dict[str, Any]:
        try:
            entry = self.path.relative_to(cache_root).as_posix()
        except ValueError:
            entry = str(self.path)
        d = {
            "name": self.name,
            "kind": self.kind,
            "key": self.key,
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "seed": self.seed,
            "entry": entry,
            "outputs": self.outputs,
        }
        if self.waited:
            d["waited_for_lock"] = round(self.waited, 3)
        if self.error:
            d["error"] = self.error
        return d


@dataclass
class RunResult:
    """The outcome of :func:`run_pipeline`."""

    pipeline: str
    run_id: str
    stages: dict[str, StageRun]
    manifest_path: Path
    run_dir: Path
    seconds: float
    reports: list[Path] = field(default_factory=list)

    @property
    def hits(self) -> list[str]:
        return [n for n, s in self.stages.items() if s.status == "hit"]

    @property
    def executed(self) -> list[str]:
        """Stages that ran (cache misses and forced re-runs)."""
        return [n for n, s in self.stages.items() if s.status in ("miss", "forced")]

    def __getitem__(self, name: str) -> StageRun:
        return self.stages[name]


EventFn = Callable[[str, StageRun | None, str], None]


def _load(ref: str) -> Callable[..., Any]:
    module, _, fn = ref.partition(":")
    return getattr(importlib.import_module(module), fn)


def _entry(cache: Cache, pipeline: Pipeline, sk: StageKey) -> Entry:
    st = pipeline.stages[sk.name]
    ds = pipeline.datasets[st.datasets["data"]] if st.kind == "encode" else None
    return Entry(
        sk.name, sk.kind, sk.key, cache.entry_dir(sk.kind, sk.key), cache.meta(sk.kind, sk.key), ds
    )


def resolve_cache(pipeline: Pipeline, cache: str | Path | None) -> Cache:
    """The cache of a run: the argument, else the file's ``cache:``, else ``$EMBEDPIPE_CACHE`` or ./cache."""
    root = (
        Path(cache)
        if cache is not None
        else pipeline.resolve(pipeline.spec.cache, default_cache_dir())
    )
    return Cache(root)


def _build(
    cache: Cache,
    pipeline: Pipeline,
    sk: StageKey,
    entries: dict[str, Entry],
    progress: bool,
    run_info: dict[str, Any],
    executor: RunExecutor | None = None,
) -> tuple[dict[str, Any], float]:
    st = pipeline.stages[sk.name]
    info = st.info
    tmp = cache.new_tmp(sk.kind, sk.key, keep_partial=info.resumable)
    ctx = StageContext(
        name=sk.name,
        kind=sk.kind,
        key=sk.key,
        params=st.params,
        seed=st.seed,
        out=tmp,
        inputs={role: [entries[u] for u in ups] for role, ups in st.inputs.items()},
        datasets={role: pipeline.datasets[ds] for role, ds in st.datasets.items()},
        cache=cache,
        pipeline=pipeline,
        progress=progress,
        executor=executor,
    )
    fn = _load(info.runner)
    seed_everything(st.seed)
    t0 = time.perf_counter()
    try:
        outputs = fn(ctx) or {}
    except BaseException:
        if not info.resumable:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - t0
    meta = {
        "kind": sk.kind,
        "version": info.version,
        "key": sk.key,
        "key_inputs": sk.key_inputs,
        "stage": sk.name,
        "pipeline": pipeline.name,
        "seed": st.seed,
        "params": st.params.model_dump(mode="json"),
        "outputs": outputs,
        "seconds": seconds,
        "created": now(),
        "run_id": run_info["run_id"],
        "versions": run_info["versions"],
    }
    cache.commit(sk.kind, sk.key, tmp, meta)
    return outputs, seconds


def run_pipeline(
    pipeline: Pipeline | str | Path,
    cache: str | Path | None = None,
    *,
    only: Sequence[str] = (),
    force: Sequence[str] = (),
    runs_dir: str | Path | None = None,
    progress: bool = True,
    on_event: EventFn | None = None,
    lock_timeout: float = -1,
    executor: Any = None,
) -> RunResult:
    """Run a pipeline, recomputing only the stages whose key is not in the cache.

    Parameters
    ----------
    pipeline
        A :class:`Pipeline` or the path of a pipeline file.
    cache
        The cache folder (default: the file's ``cache:``, else ``$EMBEDPIPE_CACHE``, else
        ``./cache``).
    only
        Run just these stages and their upstream.
    force
        Re-run these stages even when cached (their entry is replaced).
    runs_dir
        Where the run's manifest (and report pages) go, as ``<runs_dir>/<pipeline>/<run id>/``
        (default: the file's ``runs_dir:``, else ``./runs``).
    progress
        Show progress bars inside stages.
    on_event
        Called as ``on_event(event, stage_run, message)`` with events ``"start"``, ``"wait"``,
        ``"done"``, ``"failed"`` (CLI output).
    lock_timeout
        Seconds to wait for another run building the same entry (``-1``: no limit).
    executor
        Overrides the file's ``executor:``: a mapping of the keys to change (``{"name":
        "ray", "address": "auto", "num_workers": 4}``), a name, ``"none"`` (no executor) or
        an :class:`~embedpipe.encode.executors.ExecutorConfig`. The executor is started on
        first use (by an encode stage, or an index stage over a sharded store) and closed
        when the run ends, also on failure. It never changes a stage key.

    Returns
    -------
    RunResult
        Per-stage status (hit / miss / forced), timings and the manifest path.

    Raises
    ------
    ConfigError
        For an unknown ``only`` / ``force`` stage, bad executor settings (naming the key
        ``executor``) or a bad pipeline; a stage's own error
        propagates after the manifest is written (with the failure recorded).

    Examples
    --------
    >>> result = run_pipeline("pipelines/quickstart.yaml")  # doctest: +SKIP
    >>> result.executed  # doctest: +SKIP
    []
    """
    if not isinstance(pipeline, Pipeline):
        pipeline = Pipeline.from_file(pipeline)
    emit = on_event or (lambda *a: None)
    t_start = time.perf_counter()
    started = now()
    run_id = new_run_id()
    for n in (*only, *force):
        if n not in pipeline.stages:
            raise ConfigError(
                f"no stage {n!r} in pipeline {pipeline.name!r}; stages: {', '.join(pipeline.stages)}."
            )
    order = pipeline.order(list(only) or None)
    missing_force = [n for n in force if n not in order]
    if missing_force:
        raise ConfigError(
            f"--force {missing_force[0]!r}: that stage is not part of this run (--only {', '.join(only)})."
        )
    run_executor = RunExecutor(pipeline.executor_config(executor))
    store = resolve_cache(pipeline, cache)
    store.ensure()
    runs_root = (
        Path(runs_dir)
        if runs_dir is not None
        else pipeline.resolve(pipeline.spec.runs_dir, Path("runs"))
    )
    run_dir = runs_root / pipeline.name / run_id
    versions = library_versions()
    run_info = {"run_id": run_id, "versions": versions}
    runs: dict[str, StageRun] = {}
    entries: dict[str, Entry] = {}
    keys: dict[str, StageKey] = {}
    reports: list[Path] = []
    error: BaseException | None = None
    t_keys = 0.0
    current: StageRun | None = None
    t0 = time.perf_counter()
    try:
        with store.gc_lock().read_lock():
            t0 = time.perf_counter()
            keys = {n: pipeline.key(n) for n in order}
            t_keys = time.perf_counter() - t0
            # Check the stages about to be built (e.g. a head's parameters) before building any.
            for n in order:
                st = pipeline.stages[n]
                if st.info.check and (n in force or not store.is_complete(st.kind, keys[n].key)):
                    _load(st.info.check)(st)
            for n in order:
                sk = keys[n]
                st = pipeline.stages[n]
                path = store.entry_dir(sk.kind, sk.key)
                forced = n in force
                run = StageRun(n, sk.kind, sk.key, "hit", 0.0, st.seed, path)
                t0 = time.perf_counter()
                if not forced and store.is_complete(sk.kind, sk.key):
                    run.seconds = time.perf_counter() - t0
                else:
                    lock = store.entry_lock(sk.kind, sk.key, timeout=lock_timeout)
                    try:
                        lock.acquire(timeout=0)
                    except Timeout:
                        emit(
                            "wait",
                            run,
                            f"another run is building {n} ({sk.kind}/{sk.key[:12]}); waiting",
                        )
                        try:
                            lock.acquire()
                        except Timeout:
                            raise ConfigError(
                                f"stage {n!r}: another run held {sk.kind}/{sk.key} for over {lock_timeout}s; "
                                "try again when it ends."
                            ) from None
                        run.waited = time.perf_counter() - t0
                    try:
                        if not forced and store.is_complete(sk.kind, sk.key):
                            pass  # built meanwhile by the run we waited for
                        else:
                            run.status = "forced" if forced else "miss"
                            runs[n] = current = run
                            emit("start", run, "")
                            run.outputs, _ = _build(
                                store, pipeline, sk, entries, progress, run_info, run_executor
                            )
                            current = None
                    finally:
                        lock.release()
                    run.seconds = time.perf_counter() - t0
                entries[n] = _entry(store, pipeline, sk)
                if run.status == "hit":
                    run.outputs = entries[n].outputs
                runs[n] = run
                emit("done", run, "")
            # per-run pages (reports show this run's timings and cache hits)
            hooks = [
                (n, pipeline.stages[n].info.after_run)
                for n in order
                if pipeline.stages[n].info.after_run
            ]
            if hooks:
                manifest = _manifest(
                    pipeline,
                    store,
                    run_id,
                    started,
                    t_start,
                    order,
                    only,
                    force,
                    runs,
                    versions,
                    t_keys,
                    None,
                )
                for n, ref in hooks:
                    assert ref is not None
                    reports.append(_load(ref)(entries[n], manifest, run_dir))
    except BaseException as e:
        error = e
        if current is not None:
            current.status = "failed"
            current.error = f"{type(e).__name__}: {e}"
            current.seconds = time.perf_counter() - t0
            emit("failed", current, current.error)
        raise
    finally:
        run_executor.close()
        ok = {n: keys[n].record() for n, r in runs.items() if r.status != "failed"}
        if ok:
            store.update_record(
                pipeline.name,
                str(pipeline.file.resolve()) if pipeline.file else None,
                ok,
                keep=set(pipeline.stages),
            )
        manifest = _manifest(
            pipeline,
            store,
            run_id,
            started,
            t_start,
            order,
            only,
            force,
            runs,
            versions,
            t_keys,
            error,
        )
        manifest["reports"] = [str(p) for p in reports]
        manifest["executor"] = run_executor.describe()
        manifest_path = run_dir / "manifest.json"
        write_json_atomic(manifest_path, manifest)
    return RunResult(
        pipeline.name, run_id, runs, manifest_path, run_dir, time.perf_counter() - t_start, reports
    )


def _manifest(
    pipeline: Pipeline,
    cache: Cache,
    run_id: str,
    started: str,
    t_start: float,
    order: list[str],
    only: Sequence[str],
    force: Sequence[str],
    runs: dict[str, StageRun],
    versions: dict[str, str],
    t_keys: float,
    error: BaseException | None,
) -> dict[str, Any]:
    used = {ds for n in order for ds in pipeline.stages[n].datasets.values()}
    datasets = {}
    for name in sorted(used):
        h = pipeline.datasets[name]
        d: dict[str, Any] = {"spec": h.spec.to_dict()}
        if "digest" in h.__dict__:  # computed during this run
            d["digest"] = h.digest
        datasets[name] = d
    out: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA,
        "run_id": run_id,
        "pipeline": pipeline.name,
        "file": str(pipeline.file) if pipeline.file else None,
        "file_digest": file_digest(pipeline.file) if pipeline.file else None,
        "git": git_info(pipeline.file) if pipeline.file else None,
        "cache": str(cache.root),
        "started": started,
        "finished": now(),
        "seconds": round(time.perf_counter() - t_start, 4),
        "key_seconds": round(t_keys, 4),
        "status": "ok" if error is None else "failed",
        "seed": pipeline.spec.seed,
        "only": list(only),
        "force": list(force),
        "versions": versions,
        "datasets": datasets,
        "stages": [runs[n].to_dict(cache.root) for n in order if n in runs],
        "hits": sum(1 for r in runs.values() if r.status == "hit"),
        "misses": sum(1 for r in runs.values() if r.status in ("miss", "forced")),
    }
    if error is not None:
        out["error"] = f"{type(error).__name__}: {error}"
        out["traceback"] = traceback.format_exception(error)[-3:]
    return out
