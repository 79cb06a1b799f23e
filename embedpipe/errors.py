"""Exceptions raised by embedpipe. Every message names the item and the fix.

A message names arguments through :class:`Arg` and suggests them through :class:`Fix`, so one
error reads in each interface's words: ``str(err)`` in Python's (``overwrite=True``) and
``err.worded(flags)`` in a command's (``--overwrite``), from the command's own map of argument
names to flags. A suggestion whose flags the command lacks is left out there.

Examples
--------
>>> e = StoreError("'a.h5' already exists", Fix("; pass ", overwrite=True, does=" to replace it"), ".")
>>> str(e)
"'a.h5' already exists; pass overwrite=True to replace it."
>>> e.worded({"overwrite": "--overwrite"})
"'a.h5' already exists; pass --overwrite to replace it."
>>> e.worded({})
"'a.h5' already exists."
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Arg:
    """An argument a message names: ``name=value`` in Python, ``--flag value`` in a command.

    Parameters
    ----------
    name
        The Python argument name; a command's parameter of that name gives the flag.
    value
        Its value (``...``: a value of the user's choice; ``True``: a switch on the command line).
    py
        The value's Python text, where ``repr(value)`` is not it (e.g. ``"[...]"``).
    cli
        The value's command-line words, where they are not derived from ``value`` (nor ``py``).

    Examples
    --------
    >>> Arg("label_column", "sentimnt").python()
    "label_column='sentimnt'"
    >>> Arg("label_column", "sentimnt").command_line({"label_column": "--label-column"})
    "--label-column 'sentimnt'"
    >>> Arg("on_error", "skip").command_line({"on_error": "--on-error"}, quoted=False)
    '--on-error skip'
    """

    name: str
    value: Any = True
    py: str | None = None
    cli: str | None = None

    def python(self) -> str:
        """``name=value`` as Python code writes it."""
        text = self.py if self.py is not None else "..." if self.value is ... else repr(self.value)
        return f"{self.name}={text}"

    def command_line(self, flags: Mapping[str, str], quoted: bool = True) -> str | None:
        """``--flag value`` for a command with these ``{name: --flag}``; ``None`` without the flag.

        A value the user gave reads quoted (``--label-column 'x'``); a suggested one, bare
        (``quoted=False``: ``--on-error skip``).
        """
        flag = flags.get(self.name)
        if flag is None:
            return None
        if self.cli is not None:
            word = self.cli
        elif self.value is True:
            word = ""
        elif self.value is ...:
            word = "..."
        elif self.py is not None:
            word = self.py
        else:
            word = repr(self.value) if quoted else str(self.value)
        return f"{flag} {word}".rstrip()


@dataclass(frozen=True, init=False)
class Fix:
    """A suggestion in a message: ``lead``, then one of ``options`` (each one or more
    arguments passed together), then what it ``does``.

    A command keeps the options whose every argument is one of its flags and leaves the whole
    suggestion (lead and does included) out when none is.

    Examples
    --------
    >>> f = Fix(", or pass ", overwrite=True, allow_mixed_precision=True)
    >>> f.python()
    ', or pass overwrite=True or allow_mixed_precision=True'
    >>> f.command_line({"overwrite": "--overwrite"})
    ', or pass --overwrite'
    >>> Fix(" Pass ", (Arg("precision", "fp32"), Arg("runtime", "openvino"))).python()
    " Pass precision='fp32', runtime='openvino'"
    """

    lead: str
    options: tuple[tuple[Arg, ...], ...]
    does: str

    def __init__(
        self, lead: str, *options: Arg | tuple[Arg, ...], does: str = "", **named: Any
    ) -> None:
        opts = [o if isinstance(o, tuple) else (o,) for o in options]
        opts += [(Arg(k, v),) for k, v in named.items()]
        object.__setattr__(self, "lead", lead)
        object.__setattr__(self, "options", tuple(opts))
        object.__setattr__(self, "does", does)

    def python(self) -> str:
        """The suggestion in Python's words."""
        words = [", ".join(a.python() for a in opt) for opt in self.options]
        return self.lead + _either(words) + self.does

    def command_line(self, flags: Mapping[str, str]) -> str:
        """The suggestion in a command's words; ``""`` when it has none of the flags."""
        words = []
        for opt in self.options:
            forms = [a.command_line(flags, quoted=False) for a in opt]
            if all(f is not None for f in forms):
                words.append(" ".join(f for f in forms if f is not None))
        return self.lead + _either(words) + self.does if words else ""


def _either(words: list[str]) -> str:
    """``a or b``; ``a, or b, or c`` when there are more, or when one has a comma of its own."""
    if len(words) == 1:
        return words[0]
    return (", or " if len(words) > 2 or any("," in w for w in words) else " or ").join(words)


#: One piece of a message: text, an argument it names, or a fix it suggests.
Part = str | Arg | Fix


def worded(parts: tuple[Any, ...], flags: Mapping[str, str] | None = None) -> str:
    """A message from its parts, in Python's words (``flags=None``) or in a command's.

    An :class:`Arg` the command has no flag for keeps its Python form; a :class:`Fix` it has
    no flag for is left out.

    Examples
    --------
    >>> worded(("no column ", Arg("text_column", "body"), "."), {"text_column": "--text-column"})
    "no column --text-column 'body'."
    """
    out = []
    for p in parts:
        if isinstance(p, Fix):
            out.append(p.python() if flags is None else p.command_line(flags))
        elif isinstance(p, Arg):
            out.append(p.python() if flags is None else p.command_line(flags) or p.python())
        else:
            out.append(str(p))
    return "".join(out)


class EmbedpipeError(Exception):
    """Base class of every error embedpipe raises on purpose.

    Its message may be given in parts (text, :class:`Arg`, :class:`Fix`): ``str(err)`` words
    it for Python, :meth:`worded` for a command.
    """

    def __init__(self, *parts: Any) -> None:
        self.parts: tuple[Any, ...] = parts
        if any(isinstance(p, (Arg, Fix)) for p in parts):
            super().__init__(worded(parts))
        else:
            super().__init__(*parts)

    def worded(self, flags: Mapping[str, str] | None = None) -> str:
        """The message for a command with these ``{argument name: --flag}`` (Python's words
        when ``flags`` is None)."""
        if flags is None or not any(isinstance(p, (Arg, Fix)) for p in self.parts):
            return str(self)
        return worded(self.parts, flags)


class ConfigError(EmbedpipeError, ValueError):
    """A bad option, name, path or pipeline file."""


class NotFoundError(EmbedpipeError, LookupError):
    """A name (backbone, head, source form, stage, index type, column...) that is not known.

    The message lists close matches ("did you mean") and the known names.
    """


class UnknownKeyError(NotFoundError, KeyError):
    """An id, row or column that is not there: a :class:`NotFoundError` (the CLI prints one
    line) that is also a :class:`KeyError`, for code that looks ids up like dict keys.

    Examples
    --------
    >>> str(UnknownKeyError("id 'x' is not in this index"))
    "id 'x' is not in this index"
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ItemError(EmbedpipeError):
    """One input item (image, text) could not be read or is invalid.

    Parameters
    ----------
    item_id
        The stable id of the item.
    reason
        What is wrong with it.
    """

    def __init__(self, item_id: str, reason: str) -> None:
        self.item_id = item_id
        self.reason = reason
        super().__init__(
            f"item {item_id!r}: {reason}. Fix or remove it",
            Fix(
                ", or pass ",
                on_error="skip",
                does=" to skip bad items and record them in the store",
            ),
            ".",
        )

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Picklable across DataLoader / Ray worker processes.
        return (type(self), (self.item_id, self.reason))


class StoreError(EmbedpipeError):
    """A feature store is missing, truncated, corrupt or incomplete."""


class FingerprintMismatchError(StoreError):
    """Features of one backbone were about to be mixed with another's."""

    def __init__(
        self, what: str, expected: str, found: str, hint: str | tuple[Part, ...] = ""
    ) -> None:
        self.what = what
        self.expected = expected
        self.found = found
        self.hint = hint
        msg = f"{what}: backbone fingerprint mismatch (expected {expected}, found {found})"
        more = (hint,) if isinstance(hint, str) else tuple(hint)
        super().__init__(msg, *((". ", *more) if any(more) else ()))

    def __reduce__(self) -> tuple[type, tuple[str, str, str, str | tuple[Part, ...]]]:
        return (type(self), (self.what, self.expected, self.found, self.hint))


class FeatureValueError(StoreError):
    """NaN or Inf features were about to be written."""


class DiskFullError(StoreError):
    """The device holding a store (or an export) ran out of space.

    What was committed before is kept: free space and run the same command to resume.

    Examples
    --------
    >>> str(DiskFullError("cache/a.h5", 1152))
    "no space left on device while writing 'cache/a.h5'; 1,152 rows are kept; free space and run the same command to resume."
    """

    def __init__(self, path: object, rows_kept: int | None = None) -> None:
        self.path = str(path)
        self.rows_kept = rows_kept
        kept = "committed rows are kept" if rows_kept is None else f"{rows_kept:,} rows are kept"
        super().__init__(
            f"no space left on device while writing {self.path!r}; {kept}; free space and run "
            "the same command to resume."
        )

    def __reduce__(self) -> tuple[type, tuple[str, int | None]]:
        return (type(self), (self.path, self.rows_kept))


_STOP: list[int] = []


def request_stop(signum: int) -> None:
    """Record that the process was asked to stop (the CLI's SIGINT / SIGTERM handler); long
    loops call :func:`raise_if_stopped` between units of work, so the request is honoured
    even when the handler's own exception landed where Python swallows exceptions (a
    finaliser or weak-reference callback running at that instant)."""
    _STOP.append(signum)


def clear_stop() -> None:
    """Forget stop requests (the CLI, once its command has ended)."""
    _STOP.clear()


def raise_if_stopped() -> None:
    """Raise :class:`Interrupted` if a stop was requested (see :func:`request_stop`)."""
    if _STOP:
        raise Interrupted(_STOP[-1])


class Interrupted(BaseException):
    """The process was asked to stop (SIGINT / SIGTERM, installed by the CLI).

    A :class:`BaseException` like :class:`KeyboardInterrupt`, so clean-up code that commits
    finished work runs, but not a ``KeyboardInterrupt`` itself: the CLI framework would turn
    that into a bare exit before embedpipe could say what was kept.
    """

    def __init__(self, signum: int) -> None:
        import signal

        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)
