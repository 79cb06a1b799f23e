"""One grammar for options written inline: ``name?key=value&key=value`` and ``key=value``.

Source specs (``"builtin:digits?limit=5"``), backbone names (``"clip:<folder>?tower=text"``)
and head parameters (``-p C=0.5``) are all read here, so a value is typed the same way
wherever it is written:

- ``null``, ``~`` and an empty value are ``None`` (callers may add words: sources read
  ``none`` as ``None`` too, while a backbone's ``weights=none`` stays the string ``"none"``);
- ``true``/``false`` (also ``yes``/``no``/``on``/``off``, any case) are booleans;
- integers and floats (``5``, ``0.2``, ``1e-4``, ``inf``) are numbers;
- a value starting with ``[``, ``{`` or a quote is read as YAML (``[256, 64]``, ``'5'``);
- anything else is the string itself, ``%XX`` escapes decoded (``+`` stays a plus, so
  ``split=train+test`` and ``preprocess=l2+pca`` mean what they say).

Examples
--------
>>> split_options("clip:models/clip?tower=text&normalize=true")
('clip:models/clip', {'tower': 'text', 'normalize': True})
>>> parse_pair("hidden_sizes=[256, 64]")
('hidden_sizes', [256, 64])
>>> parse_options("limit=5&split=train")
{'limit': 5, 'split': 'train'}
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import unquote

from .errors import ConfigError

#: The words read as ``None`` unless a caller names others.
NULLS: tuple[str, ...] = ("null", "~", "")
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def parse_value(text: str, *, nulls: Collection[str] = NULLS) -> Any:
    """Type one value (see the module's rules).

    Parameters
    ----------
    text
        The value as written (``%XX`` escapes are decoded).
    nulls
        Lower-case words read as ``None``.

    Examples
    --------
    >>> [parse_value(v) for v in ("5", "0.2", "1e-4", "TRUE", "null", "train", "[1, 2]")]
    [5, 0.2, 0.0001, True, None, 'train', [1, 2]]
    >>> parse_value("none"), parse_value("none", nulls=("none", ""))
    ('none', None)
    """
    value = unquote(text).strip()
    low = value.lower()
    if low in nulls:
        return None
    if low in _BOOLS:
        return _BOOLS[low]
    for number in (int, float):
        try:
            return number(value)
        except ValueError:
            pass
    if value[:1] in ("[", "{", "'", '"'):
        import yaml

        try:
            return yaml.safe_load(value)
        except yaml.YAMLError:
            return value
    return value


def parse_pair(
    text: str,
    *,
    what: str = "option",
    spec: str | None = None,
    form: str = "key=value",
    nulls: Collection[str] = NULLS,
) -> tuple[str, Any]:
    """``"key=value"`` → ``(key, typed value)``.

    Parameters
    ----------
    text
        One pair.
    what, spec, form
        Name the thing in the error (``"bad head parameter 'C'; write key=value, ..."``):
        what it is, the whole string it came from, and how to write it.
    nulls
        See :func:`parse_value`.

    Raises
    ------
    ConfigError
        When ``text`` has no ``=`` or no key.

    Examples
    --------
    >>> parse_pair("class_weight=balanced")
    ('class_weight', 'balanced')
    >>> parse_pair("C", what="head parameter", form="key=value, e.g. C=0.5")
    Traceback (most recent call last):
    ...
    embedpipe.errors.ConfigError: bad head parameter 'C'; write key=value, e.g. C=0.5.
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        where = f" in {spec!r}" if spec is not None and spec != text else ""
        raise ConfigError(f"bad {what} {text!r}{where}; write {form}.")
    return unquote(key).strip(), parse_value(value, nulls=nulls)


def parse_options(
    query: str,
    *,
    what: str = "option",
    spec: str | None = None,
    nulls: Collection[str] = NULLS,
) -> dict[str, Any]:
    """``"key=value&key=value"`` → ``{key: typed value}`` (an empty query is ``{}``).

    Raises
    ------
    ConfigError
        Naming the bad part and the whole ``spec``.

    Examples
    --------
    >>> parse_options("tower=text&batch=64")
    {'tower': 'text', 'batch': 64}
    >>> parse_options("limit=5&oops", what="source option", spec="builtin:digits?limit=5&oops")
    Traceback (most recent call last):
    ...
    embedpipe.errors.ConfigError: bad source option 'oops' in 'builtin:digits?limit=5&oops'; write NAME?key=value&key=value.
    """
    if not query:
        return {}
    form = "NAME?key=value&key=value"
    return dict(
        parse_pair(part, what=what, spec=spec, form=form, nulls=nulls) for part in query.split("&")
    )


def split_options(
    spec: str, *, what: str = "option", nulls: Collection[str] = NULLS
) -> tuple[str, dict[str, Any]]:
    """``"name?key=value&..."`` → ``("name", {key: value})``.

    The options follow the last ``?``; a ``?`` followed by no ``=`` is part of the name.

    Examples
    --------
    >>> split_options("hf-text:org/model")
    ('hf-text:org/model', {})
    >>> split_options("odd?name?pooling=mean")
    ('odd?name', {'pooling': 'mean'})
    """
    base, sep, query = spec.rpartition("?")
    if not sep or not base or "=" not in query:
        return spec, {}
    return base, parse_options(query, what=what, spec=spec, nulls=nulls)
