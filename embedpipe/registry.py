"""One registry pattern for every extension point: backbone kinds, source forms, stage kinds,
index types, heads (and executors).

A :class:`Registry` maps a name to an entry (a class, a function or a small dataclass that
carries the kind's own hooks, so generic code never branches on a kind's name). Entries are
added with the :meth:`Registry.register` decorator where they are defined; third-party plugins
add theirs through a Python entry-point group (``embedpipe.backbones``, ``embedpipe.sources``,
``embedpipe.stages``, ``embedpipe.indexes``, ``embedpipe.heads``), loaded the first time the
registry is looked up. An entry point names a module (its import registers its kinds) or an
object (a callable, called with the registry, or an entry registered under the entry point's
name).

Examples
--------
>>> colours = Registry("colour", group=None)
>>> @colours.register("red")
... def red() -> str:
...     return "#f00"
>>> colours.get("red")()
'#f00'
>>> "red" in colours, sorted(colours)
(True, ['red'])
>>> colours.get("rde")
Traceback (most recent call last):
...
embedpipe.errors.NotFoundError: unknown colour 'rde'; did you mean 'red'? Known: red.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata as md
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from .errors import ConfigError, NotFoundError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Entry-point groups of the registries embedpipe ships.
ENTRY_POINT_GROUPS = (
    "embedpipe.backbones",
    "embedpipe.sources",
    "embedpipe.stages",
    "embedpipe.indexes",
    "embedpipe.heads",
    "embedpipe.executors",
)


def suggest(name: str, known: Iterator[str] | list[str], n: int = 3) -> list[str]:
    """Close matches of ``name`` among ``known`` (the standard library's difflib).

    Examples
    --------
    >>> suggest("resnt50", ["resnet50", "resnet18", "vit_b_16"])
    ['resnet50', 'resnet18']
    """
    return difflib.get_close_matches(str(name), list(known), n=n, cutoff=0.6)


def did_you_mean(name: str, known: list[str] | Iterator[str]) -> str:
    """``" did you mean 'x'?"`` (with a leading space) or ``""`` when nothing is close.

    Examples
    --------
    >>> did_you_mean("lgreg", ["logreg", "ridge"])
    "; did you mean 'logreg'?"
    """
    close = suggest(name, known, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class Registry(Generic[T]):
    """Named entries of one extension point, with a decorator and entry-point plugins.

    Parameters
    ----------
    what
        The singular noun used in messages (``"backbone kind"``, ``"head"``).
    group
        The entry-point group plugins register in (``"embedpipe.heads"``); ``None`` for none.
    builtins
        The module whose import registers the built-in entries (each registered by a decorator
        or call in its own module; the package's ``__init__`` imports them, as timm does),
        imported on the first look-up so that defining a registry imports nothing heavy.
    """

    def __init__(self, what: str, group: str | None, *, builtins: str | None = None) -> None:
        self.what = what
        self.group = group
        self.builtins = builtins
        self._entries: dict[str, T] = {}
        #: The module that registered each entry (``tests/test_registries.py`` checks that a
        #: built-in is registered where it is defined, never from a central list).
        self.origins: dict[str, str] = {}
        self._plugins_loaded = group is None
        self._builtins_loaded = builtins is None
        self._loading = False

    # ---- adding ---------------------------------------------------------------------------
    @overload
    def register(
        self, name: str, entry: None = None, *, overwrite: bool = ...
    ) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, entry: T, *, overwrite: bool = ...) -> T: ...

    def register(self, name: str, entry: T | None = None, *, overwrite: bool = False) -> Any:
        """Add ``entry`` under ``name``; used bare it is a decorator.

        A name already taken is a :class:`~embedpipe.errors.ConfigError` unless ``overwrite``.
        """
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a {self.what} name must be a non-empty string, got {name!r}")

        def add(obj: T) -> T:
            if name in self._entries and not overwrite and self._entries[name] is not obj:
                raise ConfigError(
                    f"{self.what} {name!r} is already registered; pass overwrite=True to replace it"
                )
            self._entries[name] = obj
            self.origins[name] = _caller_module()
            return obj

        return add(entry) if entry is not None else add

    def unregister(self, name: str) -> None:
        """Remove an entry (tests and plugins that replace a kind)."""
        self._entries.pop(name, None)

    # ---- plugins --------------------------------------------------------------------------
    def load_plugins(self, *, reload: bool = False) -> None:
        """Import the built-ins' module, then the entry points of this registry's group (once,
        unless ``reload``)."""
        if not self._builtins_loaded and self.builtins:
            self._builtins_loaded = True
            importlib.import_module(self.builtins)
        if self.group is None or self._loading or (self._plugins_loaded and not reload):
            return
        self._loading = True
        try:
            for ep in md.entry_points(group=self.group):
                try:
                    obj = ep.load()
                except Exception as e:  # noqa: BLE001 - a broken plugin must not break the rest
                    log.warning("plugin %s (%s) failed to load: %s", ep.name, ep.value, e)
                    continue
                if ep.attr is None:
                    continue  # a module: importing it registered its kinds
                if callable(obj) and getattr(obj, "__embedpipe_plugin__", False):
                    obj(self)
                elif ep.name not in self._entries:
                    self._entries[ep.name] = obj
        finally:
            self._loading = False
            self._plugins_loaded = True

    # ---- looking up -----------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The entry named ``name``; unknown names raise :class:`~embedpipe.errors.NotFoundError`
        with a "did you mean" suggestion and the known names."""
        if name in self._entries:
            return self._entries[name]
        self.load_plugins()
        if name in self._entries:
            return self._entries[name]
        raise NotFoundError(self.unknown_message(name))

    def unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        shown = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        return f"unknown {self.what} {name!r}{did_you_mean(name, known)} Known: {shown}."

    def entries(self) -> dict[str, T]:
        """Every entry, built-ins and plugins included (a copy)."""
        self.load_plugins()
        return dict(self._entries)

    def __contains__(self, name: object) -> bool:
        if name in self._entries:
            return True
        self.load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self.load_plugins()
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        self.load_plugins()
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` pairs, sorted by name, plugins included."""
        self.load_plugins()
        return sorted(self._entries.items())

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {len(self._entries)} entries)"


def _caller_module() -> str:
    """The module outside this one (and outside a registering helper of a registry's own
    module) that called :meth:`Registry.register`."""
    frame = sys._getframe(1)
    while frame is not None:
        module = str(frame.f_globals.get("__name__", ""))
        if module != __name__ and frame.f_code.co_name not in _REGISTERING_HELPERS:
            return module
        frame = frame.f_back  # type: ignore[assignment]
    return ""


#: Names of the helpers that call :meth:`Registry.register` for their caller (a decorator's
#: inner function, ``register_head``...): the origin is the module that called them.
_REGISTERING_HELPERS = {
    "add",
    "register",
    "register_backbone_kind",
    "register_backbone",
    "register_head",
    "register_index_type",
    "register_source_form",
    "register_stage_kind",
    "register_executor",
    "decorate",
    "wrap",
}


def plugin(fn: Callable[[Registry[Any]], None]) -> Callable[[Registry[Any]], None]:
    """Mark an entry-point target as a hook called with the registry it is loaded into.

    Examples
    --------
    >>> @plugin
    ... def add_mine(registry):
    ...     registry.register("mine", object())
    >>> add_mine.__embedpipe_plugin__
    True
    """
    fn.__embedpipe_plugin__ = True  # type: ignore[attr-defined]
    return fn
