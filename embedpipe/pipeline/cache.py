"""The content-addressed stage cache on disk.

Layout of a cache folder::

    <kind>/<key>/            a complete entry: the stage's files plus meta.json
    tmp/<kind>-<key>/        an entry being built (never read as complete)
    locks/                   file locks: one per entry being built, plus the cache-wide gc lock
    fingerprints/<fp>.json   keys of the encode entries made with backbone fingerprint <fp>
    pipelines/<name>.json    each stage's last key inputs, for ``status`` and ``gc``
    trash/                   entries on their way out

A stage is built in ``tmp/`` and renamed into place once its ``meta.json`` is written: the
rename is atomic, so a crashed stage never looks complete. Building an entry holds its file
lock, so two runs on one cache never build the same entry at once (the second one waits and
then finds it complete). Runs hold the gc lock shared; ``gc`` takes it exclusively.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, ReadWriteLock, Timeout

from ..errors import ConfigError

if TYPE_CHECKING:
    from .pipeline import Pipeline

log = logging.getLogger(__name__)

META = "meta.json"
TAG = "CACHEDIR.TAG"
_TAG_TEXT = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by embedpipe (https://bford.info/cachedir/).\n"
)
DEFAULT_CACHE_ENV = "EMBEDPIPE_CACHE"


def default_cache_dir() -> Path:
    """``$EMBEDPIPE_CACHE`` if set, else ``cache`` in the current folder."""
    return Path(os.environ.get(DEFAULT_CACHE_ENV, "cache"))


def cache_root(pipeline: Pipeline | None = None, cache: str | Path | None = None) -> Path:
    """The one cache-root rule of ``run``, ``status``, ``plan`` and ``gc``.

    ``cache`` when given, else the pipeline file's ``cache:`` (relative to the file), else
    ``$EMBEDPIPE_CACHE``, else ``./cache``.

    Examples
    --------
    >>> from embedpipe.pipeline import Pipeline
    >>> p = Pipeline("p", base_dir="/proj", cache="store/cache")
    >>> p.dataset("d", "builtin:digits")
    'd'
    >>> p.stage("e", "encode", dataset="d", backbone="minilm")
    'e'
    >>> str(cache_root(p)), str(cache_root(p, "elsewhere")), str(cache_root(None, "c"))
    ('/proj/store/cache', 'elsewhere', 'c')
    """
    if cache is not None:
        return Path(cache)
    if pipeline is not None:
        return pipeline.resolve(pipeline.spec.cache, default_cache_dir())
    return default_cache_dir()


#: Top-level cache folders that are not stage kinds.
#: ``runtimes`` holds the converted models of :mod:`embedpipe.backbones.runtimes`.
RESERVED = frozenset(
    {"tmp", "locks", "fingerprints", "pipelines", "trash", "forecasts", "runtimes"}
)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, sort_keys=True, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except json.JSONDecodeError as e:
        log.warning("ignoring unreadable %s: %s", path, e)
        return default


class Cache:
    """A cache folder of stage entries.

    Parameters
    ----------
    root
        The folder (created on first write).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(
                f"cache {str(self.root)!r} is a file, not a folder; pass another --cache."
            )

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    # ---- layout -------------------------------------------------------------------------
    def entry_dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def tmp_dir(self, kind: str, key: str) -> Path:
        return self.root / "tmp" / f"{kind}-{key}"

    def _lock_path(self, name: str) -> Path:
        d = self.root / "locks"
        d.mkdir(parents=True, exist_ok=True)
        return d / f"{name}.lock"

    def ensure(self) -> None:
        """Create the folder and its CACHEDIR.TAG (backup tools skip tagged folders)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tag = self.root / TAG
        if not tag.exists():
            tag.write_text(_TAG_TEXT, encoding="utf-8")

    # ---- entries ------------------------------------------------------------------------
    def is_complete(self, kind: str, key: str) -> bool:
        return (self.entry_dir(kind, key) / META).is_file()

    def meta(self, kind: str, key: str) -> dict[str, Any]:
        meta = read_json(self.entry_dir(kind, key) / META)
        if meta is None:
            raise ConfigError(
                f"cache entry {kind}/{key} in {str(self.root)!r} is missing or incomplete."
            )
        return meta

    def entry_lock(self, kind: str, key: str, timeout: float = -1) -> FileLock:
        """The lock held while building ``kind/key``."""
        return FileLock(self._lock_path(f"{kind}-{key}"), timeout=timeout)

    def gc_lock(self, timeout: float = -1) -> ReadWriteLock:
        """Shared by runs, exclusive for ``gc``."""
        self.root.mkdir(parents=True, exist_ok=True)
        return ReadWriteLock(
            self._lock_path("gc").with_suffix(".db"), timeout=timeout, is_singleton=False
        )

    def new_tmp(self, kind: str, key: str, keep_partial: bool) -> Path:
        """The building folder of ``kind/key`` (hold its entry lock).

        A folder left by a crashed run is resumed when ``keep_partial`` (an encode resumes its
        store), else wiped.
        """
        tmp = self.tmp_dir(kind, key)
        if tmp.exists() and not keep_partial:
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / META).unlink(missing_ok=True)
        return tmp

    def commit(self, kind: str, key: str, tmp: Path, meta: dict[str, Any]) -> Path:
        """Write ``meta.json`` into ``tmp`` and rename it into place (replacing an old entry)."""
        write_json_atomic(tmp / META, meta)
        _fsync_dir(tmp)
        final = self.entry_dir(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        if final.exists():  # a forced re-run replaces the entry
            self._discard(final)
        os.rename(tmp, final)
        _fsync_dir(final.parent)
        return final

    def _discard(self, path: Path) -> None:
        trash = self.root / "trash"
        trash.mkdir(parents=True, exist_ok=True)
        dest = trash / f"{path.parent.name}-{path.name}-{uuid.uuid4().hex[:8]}"
        os.rename(path, dest)
        shutil.rmtree(dest, ignore_errors=True)

    def remove(self, kind: str, key: str) -> None:
        """Delete an entry (renamed away first, so it never looks half-present)."""
        path = self.entry_dir(kind, key)
        if path.exists():
            self._discard(path)

    def entries(self) -> Iterator[tuple[str, str, Path]]:
        """Every complete entry as ``(kind, key, path)`` (any kind, plugins' included)."""
        if not self.root.is_dir():
            return
        for d in sorted(self.root.iterdir()):
            kind = d.name
            if kind in RESERVED or kind.startswith(".") or not d.is_dir():
                continue
            for p in sorted(d.iterdir()):
                if (p / META).is_file():
                    yield kind, p.name, p

    # ---- cost forecasts (``embedpipe plan``) ----------------------------------------------
    def forecast(self, pipeline: str) -> dict[str, Any]:
        """The latest forecast of ``pipeline`` made on this cache (``{}`` when none)."""
        return read_json(self.root / "forecasts" / f"{pipeline}.json", {}) or {}

    def save_forecast(self, pipeline: str, forecast: dict[str, Any]) -> Path:
        path = self.root / "forecasts" / f"{pipeline}.json"
        write_json_atomic(path, forecast)
        return path

    def size(self, path: Path) -> int:
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

    # ---- backbone fingerprint index (item-level reuse) ----------------------------------
    def _fp_path(self, fingerprint: str) -> Path:
        return self.root / "fingerprints" / f"{fingerprint}.json"

    def add_fingerprint(self, fingerprint: str, key: str) -> None:
        """Record that encode entry ``key`` holds features of backbone ``fingerprint``."""
        with FileLock(self._lock_path("fingerprints")):
            keys = read_json(self._fp_path(fingerprint), [])
            if key not in keys:
                write_json_atomic(self._fp_path(fingerprint), sorted([*keys, key]))

    def stores_with_fingerprint(self, fingerprint: str, exclude: str | None = None) -> list[Path]:
        """Feature stores of complete encode entries made by backbone ``fingerprint``."""
        out = []
        for key in read_json(self._fp_path(fingerprint), []):
            if key == exclude or not self.is_complete("encode", key):
                continue
            meta = self.meta("encode", key)
            store = self.entry_dir("encode", key) / meta.get("outputs", {}).get(
                "store", "features.h5"
            )
            if store.is_file():
                out.append(store)
        return out

    def prune_fingerprints(self) -> None:
        """Drop keys of removed entries from the fingerprint index."""
        d = self.root / "fingerprints"
        if not d.is_dir():
            return
        with FileLock(self._lock_path("fingerprints")):
            for p in d.glob("*.json"):
                keys = [k for k in read_json(p, []) if self.is_complete("encode", k)]
                if keys:
                    write_json_atomic(p, keys)
                else:
                    p.unlink()

    # ---- per-pipeline records (status and gc) -------------------------------------------
    def _record_path(self, pipeline: str) -> Path:
        return self.root / "pipelines" / f"{pipeline}.json"

    def record(self, pipeline: str) -> dict[str, Any]:
        """The last key inputs of every stage of ``pipeline`` that ran on this cache."""
        return read_json(self._record_path(pipeline), {"stages": {}})

    def update_record(
        self,
        pipeline: str,
        file: str | None,
        stages: dict[str, dict[str, Any]],
        keep: set[str] | None = None,
    ) -> None:
        """Merge ``stages`` into the pipeline's record; drop stages not in ``keep`` when given."""
        with FileLock(self._lock_path("records")):
            rec = self.record(pipeline)
            rec["pipeline"] = pipeline
            if file is not None:
                rec["file"] = file
            rec.setdefault("stages", {}).update(stages)
            if keep is not None:
                rec["stages"] = {k: v for k, v in rec["stages"].items() if k in keep}
            write_json_atomic(self._record_path(pipeline), rec)

    def records(self) -> dict[str, dict[str, Any]]:
        d = self.root / "pipelines"
        if not d.is_dir():
            return {}
        return {p.stem: read_json(p, {"stages": {}}) for p in sorted(d.glob("*.json"))}

    def locked(self, kind: str, key: str) -> bool:
        """Whether a run is building ``kind/key`` right now."""
        lock = FileLock(self._lock_path(f"{kind}-{key}"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return True
        lock.release()
        return False
