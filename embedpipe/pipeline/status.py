"""``status``: which stages are cached, which are stale, and what changed since they last ran."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .keys import canonical_json
from .pipeline import Pipeline, StageKey

State = Literal["cached", "stale"]


@dataclass
class StageStatus:
    """One stage's state: ``cached`` (its entry exists) or ``stale`` and the reasons why."""

    name: str
    kind: str
    key: str
    state: State
    reasons: list[str] = field(default_factory=list)
    path: Path | None = None
    output: Path | None = None  # a cached stage's main output (a store, a head, a report...)

    def to_dict(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in ("name", "kind", "key", "state", "reasons")}
        return {**out, "path": str(self.output) if self.output is not None else None}


def _short(v: Any, limit: int = 60) -> str:
    s = canonical_json(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in old:
                out.append(f"{p} added ({_short(new[k])})")
            elif k not in new:
                out.append(f"{p} removed (was {_short(old[k])})")
            else:
                _diff(old[k], new[k], p, out)
    elif old != new or type(old) is not type(new):
        out.append(f"{path}: {_short(old)} -> {_short(new)}")


def explain(previous: dict[str, Any] | None, current: StageKey) -> list[str]:
    """Why ``current``'s key differs from the ``previous`` record of the same stage."""
    if previous is None:
        return ["never run on this cache"]
    if previous.get("key") == current.key:
        return ["cache entry missing (removed by gc or by hand, or the run that made it failed)"]
    old = previous.get("key_inputs", {})
    new = current.key_inputs
    reasons: list[str] = []
    if old.get("kind") != new["kind"]:
        return [f"kind changed: {old.get('kind')} -> {new['kind']}"]
    if old.get("version") != new["version"]:
        reasons.append(
            f"{new['kind']} stages changed in embedpipe (kind version {old.get('version')} -> {new['version']})"
        )
    params: list[str] = []
    _diff(old.get("params", {}), new["params"], "", params)
    reasons += [f"parameter {p}" for p in params]
    if old.get("seed") != new["seed"]:
        reasons.append(f"seed: {old.get('seed')} -> {new['seed']}")
    old_ds_names = previous.get("dataset_names", {})
    for role, digest in new["datasets"].items():
        name = current.dataset_names.get(role, role)
        was = old.get("datasets", {}).get(role)
        if was is None:
            reasons.append(f"dataset {name!r} added")
        elif was != digest:
            prev_name = old_ds_names.get(role, name)
            if prev_name != name:
                reasons.append(
                    f"dataset ({role}) is now {name!r} (was {prev_name!r}) with other content"
                )
            else:
                reasons.append(
                    f"dataset {name!r} changed (content digest {was[:10]} -> {digest[:10]})"
                )
    old_names = previous.get("input_names", {})
    for role, keys in new["inputs"].items():
        names = current.input_names.get(role, [])
        was_keys = old.get("inputs", {}).get(role)
        was_names = old_names.get(role, [])
        if was_keys is None:
            reasons.append(f"input {role!r} added ({', '.join(names)})")
        elif was_names != names:
            reasons.append(f"input {role!r} is now {', '.join(names)} (was {', '.join(was_names)})")
        elif was_keys != keys:
            changed = [n for n, a, b in zip(names, was_keys, keys, strict=False) if a != b]
            reasons.append(
                f"input {role!r} changed upstream ({', '.join(changed) or ', '.join(names)})"
            )
    for role in old.get("inputs", {}):
        if role not in new["inputs"]:
            reasons.append(f"input {role!r} removed")
    if (
        "input_names" in new
        and old.get("input_names") != new["input_names"]
        and not any(r.startswith("input") for r in reasons)
    ):
        reasons.append("input stages renamed")
    return reasons or ["key changed"]


def pipeline_status(
    pipeline: Pipeline | str | Path, cache: str | Path | None = None
) -> list[StageStatus]:
    """The state of every stage, in dependency order.

    A stage is ``cached`` when the cache holds a complete entry for its current key. Otherwise
    it is ``stale``, with reasons found by comparing its key inputs with those recorded the
    last time it ran on this cache: which parameter changed (old -> new), which dataset's
    content, which input upstream, or that it never ran.

    Examples
    --------
    >>> p = Pipeline("tiny")
    >>> p.dataset("d", "builtin:digits", limit=20)
    'd'
    >>> p.stage("e", "encode", dataset="d", backbone="torchvision:mobilenet_v2", weights="none",
    ...         options={"resize_size": 32, "crop_size": 32}, num_workers=0)
    'e'
    >>> [(s.name, s.state, s.reasons) for s in pipeline_status(p, cache="cache")]
    [('e', 'stale', ['never run on this cache'])]
    >>> _ = p.run(cache="cache", runs_dir="runs", progress=False)
    >>> [(s.name, s.state, s.output.name) for s in pipeline_status(p, cache="cache")]
    [('e', 'cached', 'features.h5')]
    """
    from .context import Entry
    from .runner import entry_problem, output_path, resolve_cache

    if not isinstance(pipeline, Pipeline):
        pipeline = Pipeline.from_file(pipeline)
    c = resolve_cache(pipeline, cache)
    record = c.record(pipeline.name).get("stages", {})
    out = []
    for name, sk in pipeline.keys().items():
        why = entry_problem(c, sk.kind, sk.key) if c.is_complete(sk.kind, sk.key) else None
        if why is not None:
            out.append(StageStatus(name, sk.kind, sk.key, "stale", [why]))
        elif c.is_complete(sk.kind, sk.key):
            path = c.entry_dir(sk.kind, sk.key)
            entry = Entry(name, sk.kind, sk.key, path, c.meta(sk.kind, sk.key))
            out.append(StageStatus(name, sk.kind, sk.key, "cached", [], path, output_path(entry)))
        else:
            out.append(StageStatus(name, sk.kind, sk.key, "stale", explain(record.get(name), sk)))
    return out
