"""Exceptions raised by embedpipe. Every message names the item and the fix."""

from __future__ import annotations


class EmbedpipeError(Exception):
    """Base class of every error embedpipe raises on purpose."""


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
            f"item {item_id!r}: {reason}. Fix or remove it, or pass on_error='skip' "
            "(CLI: --on-error skip) to skip bad items and record them in the store."
        )

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Picklable across DataLoader / Ray worker processes.
        return (type(self), (self.item_id, self.reason))


class StoreError(EmbedpipeError):
    """A feature store is missing, truncated, corrupt or incomplete."""


class FingerprintMismatchError(StoreError):
    """Features of one backbone were about to be mixed with another's."""

    def __init__(self, what: str, expected: str, found: str, hint: str = "") -> None:
        self.what = what
        self.expected = expected
        self.found = found
        self.hint = hint
        msg = f"{what}: backbone fingerprint mismatch (expected {expected}, found {found})"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)

    def __reduce__(self) -> tuple[type, tuple[str, str, str, str]]:
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
