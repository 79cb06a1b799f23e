"""Running a pipeline: keys first, then each stage in dependency order, reusing the cache."""

from __future__ import annotations

import logging
import shutil
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from filelock import Timeout

from ..errors import ConfigError
from .cache import Cache, cache_root, write_json_atomic
from .context import Entry, StageContext, seed_everything
from .executor import RunExecutor
from .manifest import MANIFEST_SCHEMA, file_digest, git_info, library_versions, new_run_id, now
from .measure import Measure, folder_bytes
from .pipeline import Pipeline, StageKey

if TYPE_CHECKING:
    from typing import Unpack  # Python 3.11+; only for the type checker

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
    output_path: Path | None = None  # the stage's main output (a store, a head, a report...)
    actual: dict[str, float] = field(default_factory=dict)  # built stages: seconds, bytes
    forecast: dict[str, float] | None = None  # what `embedpipe plan` predicted for this key

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
        if self.output_path is not None:
            d["path"] = str(self.output_path)
        if self.actual:
            d["actual"] = self.actual
        if self.forecast is not None:
            d["forecast"] = self.forecast
            d["forecast_error"] = forecast_error(self.forecast, self.actual or None)
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
    pipeline_stages: dict[str, Any] = field(default_factory=dict, repr=False)

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


def forecast_error(
    forecast: dict[str, float], actual: dict[str, float] | None
) -> dict[str, float | None]:
    """Forecast / actual for each figure both have (``None`` where the actual is 0).

    Examples
    --------
    >>> forecast_error({"seconds": 3.0, "disk_bytes": 0}, {"seconds": 2.0, "disk_bytes": 0})
    {'seconds': 1.5, 'disk_bytes': None}
    >>> forecast_error({"seconds": 0.0}, None)  # a cache hit: nothing was built
    {'seconds': None}
    """
    out: dict[str, float | None] = {}
    for k, f in forecast.items():
        a = (actual or {}).get(k)
        out[k] = round(f / a, 3) if a else None
    return out


def output_path(entry: Entry) -> Path | None:
    """The path of an entry's main output (its kind's ``main_output``), if it has one."""
    from .kinds import kind_info

    out = kind_info(entry.kind).main_output
    rel = entry.outputs.get(out) if out else None
    return entry.path / rel if isinstance(rel, str) else None


def next_steps(result: RunResult) -> list[str]:
    """The commands to try next on what a run made (each kind's ``next_steps`` hook).

    Examples
    --------
    >>> from pathlib import Path
    >>> r = RunResult("p", "id", {}, Path("m.json"), Path("."), 0.0)
    >>> next_steps(r)
    []
    """
    from .kinds import kind_info

    out: list[str] = []
    stages = result.stages
    for run in stages.values():
        hook = kind_info(run.kind).next_steps
        if hook is None or run.output_path is None:
            continue
        st = result.pipeline_stages.get(run.name) if result.pipeline_stages else None
        ups = {
            role: [stages[u] for u in names if u in stages]
            for role, names in (st.inputs.items() if st is not None else [])
        }
        for cmd in hook(run, ups):
            if cmd not in out:
                out.append(cmd)
    return out


def resolve_cache(pipeline: Pipeline, cache: str | Path | None) -> Cache:
    """The cache of a run (see :func:`embedpipe.pipeline.cache.cache_root`)."""
    return Cache(cache_root(pipeline, cache))


def _entry(cache: Cache, pipeline: Pipeline, sk: StageKey) -> Entry:
    st = pipeline.stages[sk.name]
    role = st.info.entry_dataset
    ds = pipeline.datasets[st.datasets[role]] if role and role in st.datasets else None
    return Entry(
        sk.name, sk.kind, sk.key, cache.entry_dir(sk.kind, sk.key), cache.meta(sk.kind, sk.key), ds
    )


def _build(
    cache: Cache,
    pipeline: Pipeline,
    sk: StageKey,
    entries: dict[str, Entry],
    progress: bool,
    run_info: dict[str, Any],
    executor: RunExecutor | None = None,
    measure: Measure | None = None,
) -> tuple[dict[str, Any], float]:
    """Build one entry in a temporary folder and commit it into the cache (hold its lock)."""
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
    seed_everything(st.seed)
    m = measure or Measure()
    try:
        with m:
            outputs = info.run(ctx) or {}
    except BaseException:
        if not info.resumable:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = m.seconds
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
        "peak_memory_bytes": m.peak_bytes,
        "created": now(),
        "run_id": run_info["run_id"],
        "versions": run_info["versions"],
    }
    cache.commit(sk.kind, sk.key, tmp, meta)
    return outputs, seconds


@dataclass
class RunState:
    """Everything one run knows; the manifest is written from it (once per page, and at the end)."""

    pipeline: Pipeline
    cache: Cache
    run_id: str
    started: str
    t_start: float
    order: list[str]
    only: list[str]
    force: list[str]
    run_dir: Path
    versions: dict[str, str]
    runs: dict[str, StageRun] = field(default_factory=dict)
    entries: dict[str, Entry] = field(default_factory=dict)
    keys: dict[str, StageKey] = field(default_factory=dict)
    reports: list[Path] = field(default_factory=list)
    t_keys: float = 0.0
    forecast: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None

    def manifest(self, executor: RunExecutor | None = None) -> dict[str, Any]:
        """The run manifest (see :data:`MANIFEST_SCHEMA`)."""
        pipeline, order = self.pipeline, self.order
        used = {ds for n in order for ds in pipeline.stages[n].datasets.values()}
        datasets = {}
        for name in sorted(used):
            h = pipeline.datasets[name]
            d: dict[str, Any] = {"spec": h.spec.to_dict()}
            if "digest" in h.__dict__:  # computed during this run
                d["digest"] = h.digest
            datasets[name] = d
        runs = self.runs
        out: dict[str, Any] = {
            "schema": MANIFEST_SCHEMA,
            "run_id": self.run_id,
            "pipeline": pipeline.name,
            "file": str(pipeline.file) if pipeline.file else None,
            "file_digest": file_digest(pipeline.file) if pipeline.file else None,
            "git": git_info(pipeline.file) if pipeline.file else None,
            "cache": str(self.cache.root),
            "started": self.started,
            "finished": now(),
            "seconds": round(time.perf_counter() - self.t_start, 4),
            "key_seconds": round(self.t_keys, 4),
            "status": "ok" if self.error is None else "failed",
            "seed": pipeline.spec.seed,
            "only": self.only,
            "force": self.force,
            "versions": self.versions,
            "datasets": datasets,
            "stages": [runs[n].to_dict(self.cache.root) for n in order if n in runs],
            "hits": sum(1 for r in runs.values() if r.status == "hit"),
            "misses": sum(1 for r in runs.values() if r.status in ("miss", "forced")),
        }
        fc = [r for r in runs.values() if r.forecast is not None]
        if fc:
            f_total = sum(float(r.forecast.get("seconds", 0.0)) for r in fc if r.forecast)
            a_total = sum(r.actual.get("seconds", 0.0) for r in fc)
            out["forecast"] = {
                "made": self.forecast.get("made"),
                "seconds": round(f_total, 3),
                "actual_seconds": round(a_total, 3),
                "ratio": round(f_total / a_total, 3) if a_total else None,
            }
        if executor is not None:
            out["executor"] = executor.describe()
        if self.error is not None:
            out["error"] = f"{type(self.error).__name__}: {self.error}"
            out["traceback"] = traceback.format_exception(self.error)[-3:]
        return out


class PipelineRunner:
    """One run of a pipeline: keys first, then build-or-hit for each stage, then the manifest.

    See :func:`run_pipeline` for the parameters.
    """

    def __init__(
        self,
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
    ) -> None:
        if not isinstance(pipeline, Pipeline):
            pipeline = Pipeline.from_file(pipeline)
        self.pipeline = pipeline
        self.emit: EventFn = on_event or (lambda *a: None)
        self.progress = progress
        self.lock_timeout = lock_timeout
        t_start = time.perf_counter()
        only_b = [b for n in only for b in pipeline.branches(n)]
        force_b = [b for n in force for b in pipeline.branches(n)]
        order = pipeline.order(only_b or None)
        missing_force = [n for n in force_b if n not in order]
        if missing_force:
            raise ConfigError(
                f"--force {missing_force[0]!r}: that stage is not part of this run (--only {', '.join(only)})."
            )
        self.executor = RunExecutor(pipeline.executor_config(executor))
        store = resolve_cache(pipeline, cache)
        runs_root = (
            Path(runs_dir)
            if runs_dir is not None
            else pipeline.resolve(pipeline.spec.runs_dir, Path("runs"))
        )
        run_id = new_run_id()
        self.state = RunState(
            pipeline,
            store,
            run_id,
            now(),
            t_start,
            order,
            list(only),
            list(force),
            runs_root / pipeline.name / run_id,
            library_versions(),
        )
        self.force = set(force_b)
        self.current: StageRun | None = None  # the stage being built (marked failed on error)

    # ---- steps --------------------------------------------------------------------------
    def compute_keys(self) -> None:
        t0 = time.perf_counter()
        self.state.keys = {n: self.pipeline.key(n) for n in self.state.order}
        self.state.t_keys = time.perf_counter() - t0
        fc = self.state.cache.forecast(self.pipeline.name)
        self.state.forecast = fc
        by_key = fc.get("stages", {})
        for n, sk in self.state.keys.items():
            f = by_key.get(n)
            if f is not None and f.get("key") == sk.key:
                self.state.forecast.setdefault("_by_stage", {})[n] = f

    def to_build(self, name: str) -> bool:
        sk = self.state.keys[name]
        return name in self.force or not self.state.cache.is_complete(sk.kind, sk.key)

    def _replaced(self, name: str) -> bool:
        """A complete entry whose files were replaced since it was built (its kind's
        ``check_entry``) is rebuilt, never reused."""
        sk = self.state.keys[name]
        why = entry_problem(self.state.cache, sk.kind, sk.key)
        if why is not None:
            log.warning("stage %s: rebuilding its cache entry %s/%s: %s", name, sk.kind,
                        sk.key[:12], why)  # fmt: skip
            self.force = {*self.force, name}
        return why is not None

    def check(self) -> None:
        """Check the stages about to be built (e.g. a head's options) before building any."""
        self.pipeline.check([n for n in self.state.order if self.to_build(n)])

    def build_or_hit(self, name: str) -> StageRun:
        """Reuse the entry of ``name`` if the cache has it, else build it (under its lock)."""
        s = self.state
        sk = s.keys[name]
        st = self.pipeline.stages[name]
        store = s.cache
        path = store.entry_dir(sk.kind, sk.key)
        if name not in self.force and store.is_complete(sk.kind, sk.key):
            self._replaced(name)
        forced = name in self.force
        run = StageRun(name, sk.kind, sk.key, "hit", 0.0, st.seed, path)
        f = s.forecast.get("_by_stage", {}).get(name)
        t0 = time.perf_counter()
        if not forced and store.is_complete(sk.kind, sk.key):
            run.seconds = time.perf_counter() - t0
        else:
            lock = store.entry_lock(sk.kind, sk.key, timeout=self.lock_timeout)
            try:
                lock.acquire(timeout=0)
            except Timeout:
                self.emit(
                    "wait",
                    run,
                    f"another run is building {name} ({sk.kind}/{sk.key[:12]}); waiting",
                )
                try:
                    lock.acquire()
                except Timeout:
                    raise ConfigError(
                        f"stage {name!r}: another run held {sk.kind}/{sk.key} for over {self.lock_timeout}s; "
                        "try again when it ends."
                    ) from None
                run.waited = time.perf_counter() - t0
            try:
                if forced or not store.is_complete(sk.kind, sk.key):  # else: built meanwhile
                    run.status = "forced" if forced else "miss"
                    s.runs[name] = self.current = run
                    self.emit("start", run, "")
                    m = Measure()
                    run.outputs, _ = _build(
                        store,
                        self.pipeline,
                        sk,
                        s.entries,
                        self.progress,
                        {"run_id": s.run_id, "versions": s.versions},
                        self.executor,
                        m,
                    )
                    run.actual = {
                        "seconds": round(m.seconds, 4),
                        "disk_bytes": folder_bytes(path),
                        "peak_memory_bytes": m.peak_bytes,
                    }
                    self.current = None
            finally:
                lock.release()
            run.seconds = time.perf_counter() - t0
        if f is not None:
            run.forecast = {k: v for k, v in f.items() if k != "key"}
        s.entries[name] = _entry(store, self.pipeline, sk)
        if run.status == "hit":
            run.outputs = s.entries[name].outputs
        run.output_path = output_path(s.entries[name])
        s.runs[name] = run
        self.emit("done", run, "")
        return run

    def pages(self) -> None:
        """Per-run pages (a report shows this run's timings and cache hits)."""
        s = self.state
        hooks = [(n, self.pipeline.stages[n].info.after_run) for n in s.order]
        hooks = [(n, h) for n, h in hooks if h is not None]
        if hooks:
            manifest = s.manifest()
            for n, hook in hooks:
                assert hook is not None
                s.reports.append(hook(s.entries[n], manifest, s.run_dir))

    def finish(self) -> Path:
        """Record the pipeline's keys in the cache and write the manifest."""
        s = self.state
        self.executor.close()
        ok = {n: s.keys[n].record() for n, r in s.runs.items() if r.status != "failed"}
        if ok:
            s.cache.update_record(
                self.pipeline.name,
                str(self.pipeline.file.resolve()) if self.pipeline.file else None,
                ok,
                keep=set(self.pipeline.stages),
            )
        manifest = s.manifest(self.executor)
        manifest["reports"] = [str(p) for p in s.reports]
        path = s.run_dir / "manifest.json"
        write_json_atomic(path, manifest)
        return path

    def run(self) -> RunResult:
        s = self.state
        self.current = None
        t0 = time.perf_counter()
        s.cache.ensure()
        try:
            with s.cache.gc_lock().read_lock():
                self.compute_keys()
                self.check()
                for n in s.order:
                    t0 = time.perf_counter()
                    self.build_or_hit(n)
                self.pages()
        except BaseException as e:
            s.error = e
            if self.current is not None:
                self.current.status = "failed"
                self.current.error = f"{type(e).__name__}: {e}"
                self.current.seconds = time.perf_counter() - t0
                self.emit("failed", self.current, self.current.error)
            raise
        finally:
            manifest_path = self.finish()
        return RunResult(
            self.pipeline.name,
            s.run_id,
            s.runs,
            manifest_path,
            s.run_dir,
            time.perf_counter() - s.t_start,
            s.reports,
            dict(self.pipeline.stages),
        )


class RunOptions(TypedDict, total=False):
    """The options of a run (:func:`run_pipeline`; defaults: :class:`PipelineRunner`'s)."""

    only: Sequence[str]
    force: Sequence[str]
    runs_dir: str | Path | None
    progress: bool
    on_event: EventFn | None
    lock_timeout: float
    executor: Any


def run_pipeline(
    pipeline: Pipeline | str | Path,
    cache: str | Path | None = None,
    **options: Unpack[RunOptions],
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
        Run just these stages and their upstream (a matrix stage's name: all its branches).
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
        an executor config. The executor is started on first use (by an encode stage, or an
        index stage over a sharded store) and closed when the run ends, also on failure. It
        never changes a stage key.

    Returns
    -------
    RunResult
        Per-stage status (hit / miss / forced), timings, output paths and the manifest path.
        When ``embedpipe plan`` forecast this pipeline's current keys, the manifest holds the
        forecast next to the actual figures of each stage built.

    Raises
    ------
    ConfigError
        For an unknown ``only`` / ``force`` stage, bad executor settings (naming the key
        ``executor``), a bad pipeline or a bad head option (before any stage runs); a stage's
        own error propagates after the manifest is written (with the failure recorded).

    Examples
    --------
    >>> p = Pipeline("tiny")
    >>> p.dataset("d", "builtin:digits", limit=40)
    'd'
    >>> p.stage("e", "encode", dataset="d", backbone="torchvision:mobilenet_v2", weights="none",
    ...         options={"resize_size": 32, "crop_size": 32}, num_workers=0)
    'e'
    >>> p.stage("i", "index", inputs={"features": "e"}, type="flat")
    'i'
    >>> first = run_pipeline(p, cache="cache", runs_dir="runs", progress=False)
    >>> first.executed, run_pipeline(p, cache="cache", runs_dir="runs", progress=False).hits
    (['e', 'i'], ['e', 'i'])
    """
    return PipelineRunner(pipeline, cache, **options).run()


def entry_problem(cache: Any, kind: str, key: str) -> str | None:
    """Why the complete entry ``kind/key`` is not what its key says (see
    :attr:`KindInfo.check_entry`), or None."""
    from .kinds import kind_info

    info = kind_info(kind)
    if info.check_entry is None:
        return None
    outputs = cache.meta(kind, key).get("outputs", {})
    return info.check_entry(cache.entry_dir(kind, key), outputs)
