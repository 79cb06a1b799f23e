"""Filters of a search: a small, safe expression language over an index's row columns.

A filter (``--where`` in the CLI, ``where=`` in Python, ``"where"`` in the server's JSON) is
parsed by a hand-written recursive-descent parser into a tree of comparisons; nothing is ever
``eval``-ed, and only the index's columns can be named. The columns are ``id``, ``label``
(the class name) and the kept user columns of the stores (``--keep-columns``).

Grammar (keywords are case-insensitive)::

    expr   := and ("or" and)*
    and    := unary ("and" unary)*
    unary  := "not" unary | "(" expr ")" | test
    test   := NAME OP value | NAME ["not"] "in" "(" value ("," value)* ")"
    OP     := "==" | "=" | "!=" | "<" | "<=" | ">" | ">="
    value  := 'text' | "text" | number
    NAME   := letters, digits, "_", "-", "." (not starting with a digit) | `any name`

A comparison with a number compares the column's values as numbers (values that are not
numbers never match); with a text it compares the values as text.

Examples
--------
>>> import numpy as np
>>> f = parse_where("label == 'rotten' and year >= 2020")
>>> cols = {"label": np.array(["rotten", "fresh", "rotten"], dtype=object),
...         "year": np.array(["2021", "2024", "1999"], dtype=object)}
>>> f.mask(cols.__getitem__, list(cols), 3).tolist()
[True, False, False]
>>> parse_where("label in ('a', 'b') or not id == 'x'").columns()
['id', 'label']
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from ..errors import Arg, ConfigError

#: Longest filter accepted (characters), and deepest nesting.
MAX_CHARS = 2000
MAX_DEPTH = 32

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<num>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<op>==|!=|<=|>=|<|>|=)
  | (?P<punct>[(),])
  | (?P<quoted>`[^`]+`)
  | (?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "in"}
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

Value = str | float
ColumnFn = Callable[[str], np.ndarray]


class WhereError(ConfigError):
    """A filter that cannot be parsed or names a column the index does not have."""


@dataclass(frozen=True)
class _Tok:
    kind: str  # str, num, op, punct, name, kw, end
    text: str
    pos: int
    value: Value | None = None


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise WhereError(
                f"where {text!r}: unexpected {text[pos]!r} at position {pos}; write comparisons "
                "like label == 'x', year >= 2020, id in ('a', 'b'), joined by and / or / not."
            )
        kind = m.lastgroup or ""
        tok = m.group()
        if kind == "str":
            body = tok[1:-1]
            val = re.sub(r"\\(.)", r"\1", body)
            out.append(_Tok("str", tok, pos, val))
        elif kind == "num":
            out.append(_Tok("num", tok, pos, float(tok)))
        elif kind == "quoted":
            out.append(_Tok("name", tok, pos, tok[1:-1]))
        elif kind == "name":
            low = tok.lower()
            if low in _KEYWORDS:
                out.append(_Tok("kw", low, pos))
            else:
                out.append(_Tok("name", tok, pos, tok))
        elif kind != "ws":
            out.append(_Tok(kind, tok, pos))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


class Filter:
    """A parsed filter: :meth:`mask` evaluates it over columns, :meth:`columns` names them."""

    def columns(self) -> list[str]:
        """The column names the filter reads, sorted."""
        return sorted(set(self._names()))

    def _names(self) -> list[str]:
        raise NotImplementedError

    def evaluate(self, column: ColumnFn, n: int) -> np.ndarray:
        raise NotImplementedError

    def mask(self, column: ColumnFn, available: Sequence[str], n: int) -> np.ndarray:
        """The rows (a boolean mask of length ``n``) that pass the filter.

        ``column(name)`` gives a column's values (one per row); ``available`` the names a
        filter may use: any other is a one-line :class:`WhereError` naming what exists.
        """
        avail = list(available)
        for name in self.columns():
            if name not in avail:
                near = difflib.get_close_matches(name, avail, n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else ""
                raise WhereError(
                    f"where: no column {name!r} in this index{hint}; its columns are "
                    f"{', '.join(avail)}."
                )
        out = self.evaluate(column, n)
        return np.asarray(out, bool)


@dataclass(frozen=True)
class _Cmp(Filter):
    name: str
    op: str
    value: Value

    def _names(self) -> list[str]:
        return [self.name]

    def evaluate(self, column: ColumnFn, n: int) -> np.ndarray:
        return _compare(column(self.name), lambda v: _OPS[self.op](v, self.value), self.value)


@dataclass(frozen=True)
class _In(Filter):
    name: str
    values: tuple[Value, ...]

    def _names(self) -> list[str]:
        return [self.name]

    def evaluate(self, column: ColumnFn, n: int) -> np.ndarray:
        col = column(self.name)
        out = np.zeros(len(col), bool)
        for v in self.values:
            out |= _compare(col, partial(operator.eq, v), v)
        return out


@dataclass(frozen=True)
class _Not(Filter):
    inner: Filter

    def _names(self) -> list[str]:
        return self.inner._names()

    def evaluate(self, column: ColumnFn, n: int) -> np.ndarray:
        return ~self.inner.evaluate(column, n)


@dataclass(frozen=True)
class _Bool(Filter):
    op: str  # and / or
    parts: tuple[Filter, ...]

    def _names(self) -> list[str]:
        return [n for p in self.parts for n in p._names()]

    def evaluate(self, column: ColumnFn, n: int) -> np.ndarray:
        out = self.parts[0].evaluate(column, n)
        for p in self.parts[1:]:
            out = (
                (out & p.evaluate(column, n)) if self.op == "and" else (out | p.evaluate(column, n))
            )
        return out


def _as_number(x: object) -> float:
    try:
        f = float(str(x))
    except (TypeError, ValueError):
        return math.nan
    return f


def _compare(col: np.ndarray, test: Callable[[object], bool], value: Value) -> np.ndarray:
    """``test`` over each distinct value of ``col`` (as numbers when ``value`` is one)."""
    col = np.asarray(col, dtype=object)
    if col.size == 0:
        return np.zeros(0, bool)
    uniq, inv = np.unique(col.astype(str), return_inverse=True)
    if isinstance(value, float):
        nums = [_as_number(u) for u in uniq.tolist()]
        hits = np.array([not math.isnan(x) and bool(test(x)) for x in nums], bool)
    else:
        hits = np.array([bool(test(str(u))) for u in uniq.tolist()], bool)
    return hits[inv.reshape(-1)]


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.depth = 0

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def fail(self, what: str, tok: _Tok | None = None) -> WhereError:
        t = tok or self.peek()
        got = "the end" if t.kind == "end" else repr(t.text)
        return WhereError(
            f"where {self.text!r}: expected {what} at position {t.pos}, got {got}; write "
            "comparisons like label == 'x', year >= 2020, id in ('a', 'b'), joined by and / or / "
            "not."
        )

    def parse(self) -> Filter:
        f = self.expr()
        if self.peek().kind != "end":
            raise self.fail("and / or or the end")
        return f

    def _joined(self, op: str, part: Callable[[], Filter]) -> Filter:
        """``part (op part)*``: one part, or their ``_Bool``."""
        parts = [part()]
        while self.peek().kind == "kw" and self.peek().text == op:
            self.take()
            parts.append(part())
        return parts[0] if len(parts) == 1 else _Bool(op, tuple(parts))

    def expr(self) -> Filter:
        return self._joined("or", self.conj)

    def conj(self) -> Filter:
        return self._joined("and", self.unary)

    def unary(self) -> Filter:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise WhereError(f"where: nested deeper than {MAX_DEPTH} levels; simplify it.")
        try:
            t = self.peek()
            if t.kind == "kw" and t.text == "not":
                self.take()
                return _Not(self.unary())
            if t.kind == "punct" and t.text == "(":
                self.take()
                f = self.expr()
                if self.take().text != ")":
                    raise self.fail("')'", self.toks[self.i - 1])
                return f
            return self.test()
        finally:
            self.depth -= 1

    def value(self) -> Value:
        t = self.take()
        if t.kind not in ("str", "num") or t.value is None:
            raise self.fail("a value ('text' or a number)", t)
        return t.value

    def test(self) -> Filter:
        t = self.take()
        if t.kind != "name":
            raise self.fail("a column name", t)
        name = str(t.value)
        nxt = self.take()
        if nxt.kind == "op":
            if self.peek().kind == "punct" and self.peek().text == "(":
                raise self.fail("a value ('text' or a number)")
            return _Cmp(name, nxt.text, self.value())
        negate = False
        if nxt.kind == "kw" and nxt.text == "not":
            negate = True
            nxt = self.take()
        if nxt.kind == "kw" and nxt.text == "in":
            if self.take().text != "(":
                raise self.fail("'(' after in", self.toks[self.i - 1])
            values = [self.value()]
            while self.peek().text == ",":
                self.take()
                values.append(self.value())
            if self.take().text != ")":
                raise self.fail("',' or ')'", self.toks[self.i - 1])
            f: Filter = _In(name, tuple(values))
            return _Not(f) if negate else f
        raise self.fail(f"a comparison (==, !=, <, <=, >, >=, in) after {name!r}", nxt)


def parse_where(text: str) -> Filter:
    """Parse a filter expression (never evaluated as Python).

    Raises
    ------
    WhereError
        A one-line message saying where the expression is malformed.
    """
    if not isinstance(text, str):
        raise WhereError(Arg("where", text), ": give the filter as a text, e.g. \"label == 'x'\".")
    if not text.strip():
        raise WhereError("where: the filter is empty; e.g. label == 'x'.")
    if len(text) > MAX_CHARS:
        raise WhereError(f"where: the filter is {len(text)} characters, over {MAX_CHARS}.")
    return _Parser(text).parse()
