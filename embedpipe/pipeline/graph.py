"""The stage graph: cycle check, deterministic topological order, upstream sets, depths."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from .spec import Stage


def _find_cycle(stages: Mapping[str, Stage]) -> list[str] | None:
    """One cycle as a list of stage names (first name repeated at the end), or ``None``."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for up in stages[n].upstream:
            if state.get(up) == 1:
                return path[path.index(up) :] + [up]
            if up not in state:
                found = visit(up)
                if found:
                    return found
        path.pop()
        state[n] = 2
        return None

    for n in stages:
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def check_acyclic(
    stages: Mapping[str, Stage],
    origin: str = "pipeline",
    where: Callable[[tuple[Any, ...]], str] | None = None,
) -> None:
    """Raise :class:`~embedpipe.errors.ConfigError` naming the stages of a cycle, if any."""
    cycle = _find_cycle(stages)
    if cycle is None:
        return
    # the cycle was found walking inputs upstream; show it in data-flow order
    flow = list(reversed(cycle))
    first = flow[-2]  # the stage whose `inputs` closes the loop
    loc = ("stages", first, "inputs")
    at = where(loc) if where else origin
    raise ConfigError(
        f"{at}: stage {first!r}: key 'inputs' makes a cycle: {' -> '.join(flow)}. "
        "A stage can only read stages that do not read it back; remove one of these inputs."
    )


def topological_order(stages: Mapping[str, Stage]) -> list[str]:
    """Stages in dependency order; among ready stages, the file's order (deterministic)."""
    check_acyclic(stages)
    pending = {n: set(s.upstream) for n, s in stages.items()}
    order: list[str] = []
    while pending:
        ready = [n for n in stages if n in pending and not pending[n]]
        for n in ready:
            order.append(n)
            del pending[n]
        for deps in pending.values():
            deps.difference_update(ready)
    return order


def upstream_closure(stages: Mapping[str, Stage], names: Iterable[str]) -> set[str]:
    """``names`` and every stage they read, directly or not."""
    out: set[str] = set()
    todo = list(names)
    while todo:
        n = todo.pop()
        if n in out:
            continue
        if n not in stages:
            raise ConfigError(f"no stage {n!r} in this pipeline; stages: {', '.join(stages)}.")
        out.add(n)
        todo.extend(stages[n].upstream)
    return out


def depth(stages: Mapping[str, Stage]) -> dict[str, int]:
    """Each stage's layer: 0 for stages that read no stage, else 1 + the deepest input."""
    out: dict[str, int] = {}
    for n in topological_order(stages):
        ups = stages[n].upstream
        out[n] = 1 + max(out[u] for u in ups) if ups else 0
    return out
