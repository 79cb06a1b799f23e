"""Cost forecasts (``embedpipe plan``): what a run will take before it starts.

For every stage that is not cached, the pipeline is run on calibration samples of its real
datasets (``sizes`` items per dataset, stratified by label, in throw-away caches, after one
warm-up run), on this machine. Each stage's wall time, disk and peak resident memory are
measured at two sample sizes and extrapolated linearly (``a + b * n``) to the items the stage
depends on in the full run (the items of every dataset upstream of it). Cached stages forecast
zero. The forecast is kept in the cache (``forecasts/<pipeline>.json``, by stage key) and the
next run records it next to the actual figures in its manifest (and the report shows the
error).

Linear extrapolation fits what dominates these pipelines (encoding, linear heads, flat
indexes); a head whose cost grows faster than linearly (kNN predictions, kernel SVMs) is
under-forecast on large data.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..units import format_bytes
from .cache import cache_root
from .graph import upstream_closure
from .manifest import now
from .pipeline import Pipeline

SIZES = (32, 96)


@dataclass
class StageForecast:
    """The forecast of one stage: zero when cached, else extrapolated from the calibration."""

    name: str
    kind: str
    key: str
    cached: bool
    seconds: float = 0.0
    disk_bytes: int = 0
    peak_memory_bytes: int = 0
    n_items: int = 0
    calibration: list[dict[str, float]] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """What the cache keeps for the next run's manifest."""
        return {
            "key": self.key,
            "seconds": round(self.seconds, 4),
            "disk_bytes": int(self.disk_bytes),
            "peak_memory_bytes": int(self.peak_memory_bytes),
        }


@dataclass
class Forecast:
    """A pipeline's forecast (see :func:`forecast_pipeline`)."""

    pipeline: str
    made: str
    stages: dict[str, StageForecast]
    sizes: tuple[int, ...]
    calibration_seconds: float = 0.0
    path: Path | None = None

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages.values())

    @property
    def disk_bytes(self) -> int:
        return sum(s.disk_bytes for s in self.stages.values())

    @property
    def peak_memory_bytes(self) -> int:
        return max((s.peak_memory_bytes for s in self.stages.values()), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "made": self.made,
            "sizes": list(self.sizes),
            "calibration_seconds": round(self.calibration_seconds, 3),
            "stages": {n: s.record() for n, s in self.stages.items()},
            "detail": {n: asdict(s) for n, s in self.stages.items()},
        }


def stratified_sample(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` row indices (sorted), classes taken in turn so every class is represented.

    Examples
    --------
    >>> stratified_sample(np.array([0, 0, 0, 0, 1, 1]), 4).tolist()
    [0, 2, 4, 5]
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    picked: list[int] = []
    depth = 0
    while len(picked) < n:
        for pool in pools:
            if depth < len(pool) and len(picked) < n:
                picked.append(int(pool[depth]))
        depth += 1
    return np.sort(np.asarray(picked, np.int64))


def _calibration_pipeline(pipeline: Pipeline, n: int, seed: int) -> Pipeline:
    from ..data.subset import subset

    cal = Pipeline.from_dict(pipeline.to_dict(), base_dir=pipeline.base_dir)
    cal.file = pipeline.file
    for name, h in pipeline.datasets.items():
        src = h.source
        rows = stratified_sample(np.asarray(src.labels), n, seed)
        cal.datasets[name].__dict__["source"] = subset(src, rows)
    return cal


def _items(pipeline: Pipeline, name: str, lengths: dict[str, int]) -> int:
    """The items stage ``name`` depends on: those of every dataset upstream of it."""
    up = upstream_closure(pipeline.stages, [name])
    used = {ds for n in up for ds in pipeline.stages[n].datasets.values()}
    return sum(lengths[d] for d in used)


def _extrapolate(points: list[tuple[int, float]], n: int) -> float:
    (n1, v1), (n2, v2) = points[-2], points[-1]
    slope = max(0.0, (v2 - v1) / (n2 - n1)) if n2 != n1 else 0.0
    return max(0.0, v2 + slope * (n - n2))


def forecast_pipeline(
    pipeline: Pipeline | str | Path,
    cache: str | Path | None = None,
    *,
    sizes: tuple[int, int] = SIZES,
    save: bool = True,
    seed: int = 0,
) -> Forecast:
    """Forecast the wall time, disk and peak memory of each stage a run would build.

    Parameters
    ----------
    pipeline
        A :class:`Pipeline` or a pipeline file.
    cache
        The cache the run would use (the same rule as ``run``): cached stages forecast zero.
    sizes
        Items per dataset in the two calibration runs (after a warm-up run at the first size).
    save
        Keep the forecast in the cache, so the next run's manifest records forecast vs actual.

    Returns
    -------
    Forecast
        Per stage: ``cached``, ``seconds``, ``disk_bytes``, ``peak_memory_bytes``.

    Examples
    --------
    >>> p = Pipeline("tiny")
    >>> p.dataset("d", "builtin:digits", limit=60)
    'd'
    >>> p.stage("e", "encode", dataset="d", backbone="torchvision:mobilenet_v2", weights="none",
    ...         options={"resize_size": 32, "crop_size": 32}, num_workers=0)
    'e'
    >>> f = forecast_pipeline(p, cache="cache", sizes=(8, 16))
    >>> f.stages["e"].cached, f.stages["e"].seconds > 0, f.stages["e"].disk_bytes > 0
    (False, True, True)
    >>> f.stages["e"].n_items, [c["n_items"] for c in f.stages["e"].calibration]
    (60, [8, 16])
    """
    import time

    from .runner import run_pipeline

    if not isinstance(pipeline, Pipeline):
        pipeline = Pipeline.from_file(pipeline)
    from .cache import Cache

    store = Cache(cache_root(pipeline, cache))
    keys = pipeline.keys()
    out: dict[str, StageForecast] = {}
    todo = []
    for n, sk in keys.items():
        cached = store.is_complete(sk.kind, sk.key)
        out[n] = StageForecast(n, sk.kind, sk.key, cached)
        if not cached:
            todo.append(n)
    t0 = time.perf_counter()
    if todo:
        pipeline.check(todo)  # a bad option fails here, not after the calibration runs
        lengths = {d: len(h.source) for d, h in pipeline.datasets.items()}
        measured: dict[str, list[tuple[int, dict[str, float]]]] = {n: [] for n in todo}
        outputs: dict[str, dict[str, Any]] = {}
        tmp = Path(tempfile.mkdtemp(prefix="embedpipe-plan-"))
        try:
            for i, n_items in enumerate((sizes[0], *sizes)):
                cal = _calibration_pipeline(pipeline, n_items, seed)
                cal_lengths = {d: len(h.source) for d, h in cal.datasets.items()}
                result = run_pipeline(
                    cal,
                    cache=tmp / f"cache{i}",
                    only=todo,
                    runs_dir=tmp / "runs",
                    progress=False,
                    executor="none",
                )
                if i == 0:
                    continue  # the warm-up: imports, first model loads, allocator growth
                for n in todo:
                    r = result.stages.get(n)
                    if r is not None and r.actual:
                        measured[n].append((_items(cal, n, cal_lengths), r.actual))
                        outputs[n] = r.outputs
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for n in todo:
            pts = measured[n]
            f = out[n]
            f.n_items = _items(pipeline, n, lengths)
            f.calibration = [{"n_items": m, **a} for m, a in pts]
            if len(pts) < 2:
                continue
            for attr, field_name in (
                ("seconds", "seconds"),
                ("disk_bytes", "disk_bytes"),
                ("peak_memory_bytes", "peak_memory_bytes"),
            ):
                v = _extrapolate([(m, float(a.get(field_name, 0.0))) for m, a in pts], f.n_items)
                setattr(f, attr, v if attr == "seconds" else int(v))
            hook = pipeline.stages[n].info.forecast_disk
            if hook is not None:  # payload from the kind, overhead measured on the small run
                params = pipeline.stages[n].params
                (n1, a1) = pts[0]
                overhead = max(0, int(a1.get("disk_bytes", 0)) - hook(params, outputs[n], n1))
                f.disk_bytes = max(f.disk_bytes, hook(params, outputs[n], f.n_items) + overhead)
    fc = Forecast(pipeline.name, now(), out, tuple(sizes), time.perf_counter() - t0)
    if save:
        store.ensure()
        fc.path = store.save_forecast(pipeline.name, fc.to_dict())
    return fc


def format_forecast(fc: Forecast) -> str:
    """The forecast as the table ``embedpipe plan`` prints."""

    w = max([len(n) for n in fc.stages] + [5])
    lines = [
        f"{'stage':<{w}}  {'kind':<9} {'state':<7} {'items':>7} {'time':>9} {'disk':>10} {'peak mem':>10}"
    ]
    for n, s in fc.stages.items():
        if s.cached:
            lines.append(
                f"{n:<{w}}  {s.kind:<9} {'cached':<7} {'':>7} {'0 s':>9} {'0 B':>10} {'-':>10}"
            )
        else:
            lines.append(
                f"{n:<{w}}  {s.kind:<9} {'to run':<7} {s.n_items:>7} {s.seconds:>7.1f} s "
                f"{format_bytes(s.disk_bytes):>10} {format_bytes(s.peak_memory_bytes):>10}"
            )
    n_run = sum(not s.cached for s in fc.stages.values())
    lines.append(
        f"forecast: {n_run} stage{'s' if n_run != 1 else ''} to run, {fc.seconds:.1f} s, "
        f"{format_bytes(fc.disk_bytes)} on disk, peak memory {format_bytes(fc.peak_memory_bytes)} "
        f"(calibrated on {'/'.join(map(str, fc.sizes))} items per dataset in {fc.calibration_seconds:.1f} s)"
    )
    return "\n".join(lines)
