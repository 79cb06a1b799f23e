"""``gc``: remove cache entries that no pipeline references."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from filelock import Timeout

from ..errors import ConfigError
from .cache import Cache, default_cache_dir
from .pipeline import Pipeline


@dataclass
class GcItem:
    kind: str
    key: str
    path: Path
    bytes: int
    what: str = "entry"  # "entry" or "partial" (a crashed run's temporary folder)


@dataclass
class GcResult:
    """What ``gc`` removed (or, with ``dry_run``, would remove) and what it kept."""

    removed: list[GcItem] = field(default_factory=list)
    kept: int = 0
    dry_run: bool = False
    referenced_by: list[str] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(i.bytes for i in self.removed)


def collect_garbage(
    cache: str | Path | None = None,
    pipelines: Sequence[Pipeline | str | Path] = (),
    *,
    dry_run: bool = False,
) -> GcResult:
    """Remove the cache entries no pipeline references.

    Parameters
    ----------
    cache
        The cache folder (default ``$EMBEDPIPE_CACHE`` or ``./cache``).
    pipelines
        Keep what these pipelines reference now (their current keys). Without any, keep what
        every pipeline that has run on this cache referenced in its latest run (the records
        in ``<cache>/pipelines/``).
    dry_run
        Only list what would be removed.

    Raises
    ------
    ConfigError
        When a run is in progress on this cache (gc waits for no one; run it again later).

    Examples
    --------
    >>> collect_garbage("cache", dry_run=True).removed  # doctest: +SKIP
    []
    """
    c = Cache(cache if cache is not None else default_cache_dir())
    if not c.root.is_dir():
        raise ConfigError(
            f"cache {str(c.root)!r} does not exist; pass the cache folder with --cache."
        )
    result = GcResult(dry_run=dry_run)
    keep: set[tuple[str, str]] = set()
    if pipelines:
        for p in pipelines:
            pl = p if isinstance(p, Pipeline) else Pipeline.from_file(p)
            keep |= {(k.kind, k.key) for k in pl.keys().values()}
            result.referenced_by.append(pl.name)
    else:
        for name, rec in c.records().items():
            keep |= {
                (s["kind"], s["key"])
                for s in rec.get("stages", {}).values()
                if "kind" in s and "key" in s
            }
            result.referenced_by.append(name)

    def sweep() -> None:
        for kind, key, path in list(c.entries()):
            if (kind, key) in keep:
                result.kept += 1
                continue
            result.removed.append(GcItem(kind, key, path, c.size(path)))
        tmp = c.root / "tmp"
        if tmp.is_dir():
            for path in sorted(tmp.iterdir()):
                kind, _, key = path.name.partition("-")
                if (kind, key) in keep or c.locked(kind, key):
                    continue
                result.removed.append(GcItem(kind, key, path, c.size(path), "partial"))
        if dry_run:
            return
        for item in result.removed:
            if item.what == "entry":
                c.remove(item.kind, item.key)
            else:
                shutil.rmtree(item.path, ignore_errors=True)
        shutil.rmtree(c.root / "trash", ignore_errors=True)
        c.prune_fingerprints()

    if dry_run:
        sweep()
        return result
    lock = c.gc_lock(timeout=0)
    try:
        with lock.write_lock():
            sweep()
    except Timeout:
        raise ConfigError(
            f"a pipeline run is using cache {str(c.root)!r}; run gc again when it has finished."
        ) from None
    return result
