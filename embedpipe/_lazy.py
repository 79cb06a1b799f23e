"""Lazy re-exports for package ``__init__`` modules: ``import embedpipe`` (and its
subpackages) imports no torch, sklearn or faiss until a name that needs them is used."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], exports: Mapping[str, str], prefix: str = ""
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` that import ``exports`` (``{name: module}``,
    the module named ``prefix + module``) on first use and cache them in ``namespace``.

    Examples
    --------
    >>> ns: dict = {}
    >>> getattr_, dir_ = lazy_exports("pkg", ns, {"join": "os.path"})
    >>> getattr_("join")("a", "b"), "join" in ns, dir_()
    ('a/b', True, ['join'])
    >>> getattr_("nope")
    Traceback (most recent call last):
    ...
    AttributeError: module 'pkg' has no attribute 'nope'
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(prefix + module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *exports})

    return __getattr__, __dir__
