"""The source-form registry: every way of naming a dataset is one registered object.

A :class:`SourceForm` carries its own hooks: does a spec name this form (:meth:`~SourceForm.matches`),
open it (:meth:`~SourceForm.open`) and say what it accepts (:attr:`~SourceForm.help`).
:func:`~embedpipe.data.open_source` asks the registry and never branches on a form's name, so a
new form (a built-in one or a plugin's, entry-point group ``embedpipe.sources``) is one new
object, registered where it is defined::

    @register_source_form("s3")
    class S3Form(SourceForm):
        scheme = "s3"                      # "s3:BUCKET/KEY?option=..." and {"s3": ...}
        help = "'s3:BUCKET/KEY' (an image table on S3)"

        def open(self, target, options):
            return ...                      # any DataSource

Two kinds of form exist. *Scheme* forms (``builtin:``, ``torchvision:``, ``hf:``) are named by a
prefix ``NAME:`` in a string spec, or by a key in a dict spec. *Path* forms (image folders,
table files, Hugging Face ``datasets`` folders) claim a local path through :meth:`matches`; the
one with the highest :attr:`~SourceForm.priority` among those that match opens it.

Examples
--------
>>> form = SOURCE_FORMS.get("builtin")
>>> form.scheme, len(form.open("digits", {"limit": 5}))
('builtin', 5)
>>> SOURCE_FORMS.get("biultin")
Traceback (most recent call last):
...
embedpipe.errors.NotFoundError: unknown source form 'biultin'; did you mean 'builtin'? ...
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ..errors import Arg, ConfigError
from ..registry import Registry
from ..specs import NULLS, parse_options
from .base import DataSource

#: Every source form, by name (plugins: entry-point group ``embedpipe.sources``).
SOURCE_FORMS: Registry[SourceForm] = Registry("source form", group="embedpipe.sources")

F = TypeVar("F", bound="type[SourceForm]")


class SourceForm:
    """One way of naming a dataset, with its hooks.

    Subclass it and register an instance (or the class, decorated with
    :func:`register_source_form`, which instantiates it).

    Attributes
    ----------
    name
        The registry name (set by :func:`register_source_form`).
    scheme
        ``"builtin"`` makes ``"builtin:NAME?k=v"`` and ``{"builtin": NAME, ...}`` this form;
        ``None`` for path forms.
    priority
        Order among path forms that match the same path (higher first).
    help
        One line for messages listing the forms: what the spec looks like.
    """

    name: str = ""
    scheme: str | None = None
    priority: int = 0
    help: str = ""

    def matches(self, path: Path) -> bool:
        """Whether this (path) form claims the local ``path``. Scheme forms never do."""
        return False

    def open(self, target: str | Path, options: dict[str, Any]) -> DataSource:
        """Open the dataset ``target`` (the part after ``scheme:``, or the path) with options."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """A JSON-serialisable summary (name, scheme, help)."""
        return {"name": self.name, "scheme": self.scheme, "help": self.help}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def register_source_form(name: str, *, overwrite: bool = False) -> Callable[[F], F]:
    """Class decorator: register an instance of a :class:`SourceForm` subclass as ``name``.

    Examples
    --------
    >>> from embedpipe.data import ArraySource
    >>> @register_source_form("letters", overwrite=True)
    ... class Letters(SourceForm):
    ...     scheme = "letters"
    ...     help = "'letters:abc' (one text per letter)"
    ...     def open(self, target, options):
    ...         return ArraySource(list(str(target)), **options)
    >>> from embedpipe.data import open_source
    >>> open_source("letters:xyz").load(1)
    'y'
    >>> SOURCE_FORMS.unregister("letters")
    """

    def add(cls: F) -> F:
        form = cls()
        form.name = name
        SOURCE_FORMS.register(name, form, overwrite=overwrite)
        return cls

    return add


def all_forms() -> list[SourceForm]:
    """Every registered form, plugins included, sorted by name. A plugin's entry point may
    name a :class:`SourceForm` subclass instead of an instance: it is instantiated here."""
    out = []
    for name, entry in SOURCE_FORMS.items():
        if isinstance(entry, type) and issubclass(entry, SourceForm):
            form = entry()
            form.name = name
            SOURCE_FORMS.register(name, form, overwrite=True)
            entry = form
        if not isinstance(entry, SourceForm):
            raise ConfigError(
                f"source form {name!r} is a {type(entry).__name__}, not a SourceForm; register "
                "an embedpipe.data.SourceForm (see embedpipe.data.forms)."
            )
        out.append(entry)
    return out


def scheme_forms() -> dict[str, SourceForm]:
    """``{scheme: form}`` of the forms named by a prefix (plugins included)."""
    return {f.scheme: f for f in all_forms() if f.scheme}


def path_forms() -> list[SourceForm]:
    """Path forms, highest priority first (plugins included)."""
    return sorted((f for f in all_forms() if not f.scheme), key=lambda f: -f.priority)


def forms_help() -> str:
    """One sentence listing every registered form (for error messages)."""
    helps = [f.help for f in (*scheme_forms().values(), *path_forms()) if f.help]
    return "; ".join(dict.fromkeys(helps))


# ---- shared helpers of the forms ------------------------------------------------------------
#: Sources also read ``none`` as ``None`` (``?limit=none``).
SOURCE_NULLS = ("none", *NULLS)


def parse_query(spec: str, query: str) -> dict[str, Any]:
    """``"limit=5&split=train"`` → ``{"limit": 5, "split": "train"}`` (the grammar of
    :mod:`embedpipe.specs`; ``none`` is ``None`` too).

    Examples
    --------
    >>> parse_query("builtin:digits?limit=5", "limit=5&split=train")
    {'limit': 5, 'split': 'train'}
    """
    return parse_options(query, what="source option", spec=spec, nulls=SOURCE_NULLS)


def call_with_options(
    factory: Callable[..., DataSource], what: str, *args: Any, **kwargs: Any
) -> DataSource:
    """Call a source constructor; unknown keyword arguments are a ConfigError listing the
    accepted ones (with a close match)."""
    from ..registry import did_you_mean

    params = inspect.signature(factory).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        accepted = [p for p in params if p not in ("self", "cls", "args", "kwargs")]
        close = did_you_mean(unknown[0], accepted)
        raise ConfigError(
            f"{what}: unknown option(s) {unknown}; accepted: {accepted}{close or '.'}"
        )
    return factory(*args, **kwargs)


def split_keep_columns(value: Any) -> list[str] | None:
    """``"title,url"`` or ``["title", "url"]`` → ``["title", "url"]``; None stays None.

    Examples
    --------
    >>> split_keep_columns("title, url")
    ['title', 'url']
    """
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    cols = [str(c).strip() for c in items if str(c).strip()]
    if not cols:
        raise ConfigError(Arg("keep_columns", value), " names no column; write e.g. 'title,url'.")
    return list(dict.fromkeys(cols))
