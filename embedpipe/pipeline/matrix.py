"""Sweeps: a stage's ``matrix:`` expanded into one stage per combination of values.

A stage may carry ``matrix: {KEY: [values, ...], ...}`` where each KEY is one of its
parameters (``backbone``, ``layer``, ``pooling``, ``head``; a dotted key such as
``options.C`` reaches into a mapping parameter). It expands into one stage per combination,
named deterministically from the values: ``embed[mobilenet_v2,layer=features.14]`` (the
``backbone`` axis shows its short name, every other axis ``key=value``).

A later stage that reads a matrix stage through a **one-stage input** expands too, one copy per
branch (``head[layer=features.14,head=logreg]``), inheriting the branch's coordinates. An input
that takes **a list of stages** takes every branch whose coordinates agree with the reader's
own: an ``evaluate`` stage reading ``heads: head`` and ``test: embed_test`` (both over
``layer``) becomes one evaluate per layer, each with that layer's heads; a ``compare`` stage
reading ``evaluate: scores`` (and no one-stage matrix input) is one stage over all branches.
An input may also name one branch by its full name.

Keys stay content-based (names are not in keys, except for kinds that show their inputs'
names), so adding one value to a matrix adds stages and re-runs only those (and the stages
that read every branch).

Examples
--------
>>> branch_name("embed", {"backbone": "torchvision:mobilenet_v2", "layer": "features.14"})
'embed[mobilenet_v2,layer=features.14]'
>>> [c for c in combinations({"head": ["logreg", "knn"], "options.C": [0.1, 1]})][:2]
[{'head': 'logreg', 'options.C': 0.1}, {'head': 'logreg', 'options.C': 1}]
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .kinds import Role
    from .spec import StageSpec

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]")
#: The axis shown as its bare value in branch names.
BARE_AXES = ("backbone",)


@dataclass
class Branch:
    """One expanded stage: its name, the stage it came from, its coordinates and its spec."""

    name: str
    base: str
    axes: dict[str, Any]
    spec: StageSpec
    own: dict[str, Any] = field(default_factory=dict)


def short_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    s = str(value)
    s = s.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1] or s
    return _UNSAFE.sub("_", s)


def _full(value: Any) -> str:
    return _UNSAFE.sub("_", str(value))


def branch_name(base: str, axes: Mapping[str, Any], short: bool = True) -> str:
    """The name of the branch of ``base`` at ``axes`` (``base`` itself when there are none)."""
    if not axes:
        return base
    show = short_value if short else _full
    parts = []
    for key, value in axes.items():
        label = key.rsplit(".", 1)[-1]
        parts.append(show(value) if label in BARE_AXES else f"{label}={show(value)}")
    return f"{base}[{','.join(parts)}]"


def combinations(matrix: Mapping[str, list[Any]]) -> Iterator[dict[str, Any]]:
    """Every combination of a matrix's values, first key slowest (file order)."""
    keys = list(matrix)
    for values in itertools.product(*(matrix[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def set_param(params: dict[str, Any], key: str, value: Any) -> None:
    """Set a (dotted) parameter: ``options.C`` sets ``params["options"]["C"]``."""
    parts = key.split(".")
    node = params
    for p in parts[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = {}
            node[p] = child
        node = child
    node[parts[-1]] = value


def _agree(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def expand(
    stages: Mapping[str, StageSpec],
    roles: Callable[[str], Mapping[str, Role] | None],
    where: Callable[[tuple[Any, ...]], str],
) -> dict[str, Branch]:
    """Expand every stage's ``matrix:`` and the inputs that read matrix stages.

    Parameters
    ----------
    stages
        The stages as written, by name.
    roles
        The input roles of a stage (by its name as written); ``None`` when its kind is unknown.
    where
        Turns a location (``("stages", name, "matrix")``) into ``"file line N"``.

    Returns
    -------
    dict
        Expanded stages by name, each stage's branches together, in file order. A name an input
        gives that is no stage is kept as written (the spec check reports it).
    """
    done: dict[str, list[Branch]] = {}
    busy: set[str] = set()

    def visit(name: str) -> list[Branch]:
        if name in done:
            return done[name]
        st = stages[name]
        if name in busy:  # a cycle: the graph check reports it; do not expand through it
            return [Branch(name, name, {}, st)]
        busy.add(name)
        try:
            done[name] = _expand_one(name, st)
        finally:
            busy.discard(name)
        return done[name]

    def resolve(ref: str) -> list[Branch] | None:
        if ref in stages:
            return visit(ref)
        base, sep, _ = ref.partition("[")
        if sep and base in stages:
            # one branch named in full: read as it is, its coordinates not inherited
            return [
                Branch(b.name, b.base, {}, b.spec) for b in visit(base) if b.name == ref
            ] or None
        return None

    def _expand_one(name: str, st: StageSpec) -> list[Branch]:
        matrix = dict(st.matrix)
        loc = ("stages", name, "matrix")
        for key, values in matrix.items():
            if not isinstance(values, list) or not values:
                raise ConfigError(
                    f"{where((*loc, key))}: stage {name!r}: matrix key {key!r} must list one or "
                    f"more values, got {values!r}."
                )
            if len({repr(v) for v in values}) != len(values):
                raise ConfigError(
                    f"{where((*loc, key))}: stage {name!r}: matrix key {key!r} repeats a value."
                )
        kind_roles = roles(name) or {}
        single: list[tuple[str, list[Branch]]] = []
        many: dict[str, list[list[Branch] | str]] = {}
        for role, ref in st.inputs.items():
            refs = [ref] if isinstance(ref, str) else list(ref)
            r = kind_roles.get(role)
            if r is not None and not r.many and len(refs) == 1 and refs[0] != name:
                found = resolve(refs[0])
                if found is not None:
                    single.append((role, found))
                    continue
            many[role] = [(resolve(x) if x != name else None) or x for x in refs]
        out: list[Branch] = []
        for picks in itertools.product(*(found for _, found in single)):
            inherited: dict[str, Any] = {}
            ok = True
            for b in picks:
                if not _agree(inherited, b.axes):
                    ok = False
                    break
                inherited.update(b.axes)
            if not ok:
                continue
            for own in combinations(matrix):
                clash = inherited.keys() & own.keys()
                if clash:
                    raise ConfigError(
                        f"{where(loc)}: stage {name!r}: matrix key {sorted(clash)[0]!r} is already "
                        "an axis of a stage it reads; use another parameter or drop one matrix."
                    )
                axes = {**inherited, **own}
                inputs: dict[str, str | list[str]] = {}
                for (role, _), b in zip(single, picks, strict=True):
                    inputs[role] = b.name
                for role, sources in many.items():
                    names: list[str] = []
                    for x in sources:
                        if isinstance(x, str):
                            names.append(x)
                        else:
                            names.extend(c.name for c in x if _agree(axes, c.axes))
                    orig = st.inputs[role]
                    inputs[role] = names[0] if isinstance(orig, str) and len(names) == 1 else names
                params = copy.deepcopy(dict(st.params))
                for key, value in own.items():
                    set_param(params, key, value)
                spec = st.model_copy(update={"params": params, "inputs": inputs, "matrix": {}})
                out.append(Branch(branch_name(name, axes), name, axes, spec, own))
        names = [b.name for b in out]
        if len(set(names)) != len(names):  # short names collide: use the full values
            for b in out:
                b.name = branch_name(name, b.axes, short=False)
            if len({b.name for b in out}) != len(out):
                raise ConfigError(
                    f"{where(loc)}: stage {name!r}: two matrix branches get the same name; "
                    "make the values differ in letters, digits, '_', '.', '+' or '-'."
                )
        if not out:
            raise ConfigError(
                f"{where(('stages', name, 'inputs'))}: stage {name!r}: its inputs' matrix "
                "branches never agree on a value, so it has no branch to run."
            )
        return out

    result: dict[str, Branch] = {}
    for name in stages:
        for b in visit(name):
            result[b.name] = b
    return result
