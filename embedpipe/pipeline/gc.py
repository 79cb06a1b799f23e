"""``gc``: remove cache entries that no pipeline references."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from filelock import Timeout

from ..errors import ConfigError
from .cache import Cache, cache_root
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
        The cache folder (default: the ``cache:`` of the pipeline files given, else
        ``$EMBEDPIPE_CACHE``, else ``./cache``; the same rule as ``run`` and ``status``).
    pipelines
        Keep what these pipelines reference now (their current keys). Without any, keep what
        every pipeline that has run on this cache referenced in its latest run (the records
        in ``<cache>/pipelines/``).
    dry_run
        Only list what would be removed.

    Raises
    ------
    ConfigError
        When a run is in progress on this cache (gc waits for no one; run it again later), or
        when the pipelines given name different caches and no ``cache`` is given.

    Examples
    --------
    >>> p = Pipeline("tiny", cache="my-cache")
    >>> p.dataset("d", "builtin:digits", limit=20)
    'd'
    >>> p.stage("e", "encode", dataset="d", backbone="torchvision:mobilenet_v2", weights="none",
    ...         options={"resize_size": 32, "crop_size": 32}, num_workers=0)
    'e'
    >>> _ = p.run(runs_dir="runs", progress=False)
    >>> Cache("my-cache").ensure()
    >>> (Path("my-cache") / "encode" / ("0" * 32)).mkdir()  # an entry no pipeline needs
    >>> _ = (Path("my-cache") / "encode" / ("0" * 32) / "meta.json").write_text("{}")
    >>> [(i.kind, i.key[:4]) for i in collect_garbage(pipelines=[p], dry_run=True).removed]
    [('encode', '0000')]
    """
    pls = [p if isinstance(p, Pipeline) else Pipeline.from_file(p) for p in pipelines]
    if cache is None and pls:
        roots = {cache_root(pl).resolve() for pl in pls}
        if len(roots) > 1:
            raise ConfigError(
                f"the pipelines given use different caches ({', '.join(sorted(map(str, roots)))}); "
                "pass the cache to clean with --cache."
            )
    c = Cache(cache_root(pls[0] if pls else None, cache))
    if not c.root.is_dir():
        raise ConfigError(
            f"cache {str(c.root)!r} does not exist; pass the cache folder with --cache."
        )
    result = GcResult(dry_run=dry_run)
    keep: set[tuple[str, str]] = set()
    if pls:
        for pl in pls:
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
