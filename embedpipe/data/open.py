"""One entry point from a spec (string, path or dict) to a DataSource."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import ConfigError
from ._paths import nearby
from .base import DataSource
from .builtin import builtin_names, load_builtin
from .image_folder import ImageFolderSource
from .tables import TABLE_SUFFIXES, ImageTableSource, TextTableSource, is_table, table_columns
from .torchvision_source import TorchvisionSource

FORMS = (
    "'builtin:NAME[?limit=500&split=train&seed=0]' (NAME: " + ", ".join(builtin_names()) + "); "
    "'torchvision:NAME?root=DIR[&split=test]'; a folder of images (class sub-folders = labels); "
    "a table file (" + ", ".join(TABLE_SUFFIXES) + ") of texts (text_column) or image paths "
    "(path_column); or a dict such as {'builtin': 'digits', 'limit': 500} or "
    "{'path': 'data.csv', 'label_column': 'label'}"
)


def _parse_value(v: str) -> Any:
    low = v.strip().lower()
    if low in ("none", "null", ""):
        return None
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            return conv(v)
        except ValueError:
            pass
    return v


def _parse_query(spec: str, query: str) -> dict[str, Any]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ConfigError(
            f"{spec!r}: cannot parse options {query!r}; write them as ?key=value&key=value."
        ) from None
    return {k: _parse_value(v) for k, v in pairs}


def _call(factory: Callable[..., DataSource], what: str, *args: Any, **kwargs: Any) -> DataSource:
    """Call a source constructor, turning unknown keyword arguments into a ConfigError."""
    params = inspect.signature(factory).parameters
    unknown = [k for k in kwargs if k not in params]
    if unknown:
        accepted = [p for p in params if p not in ("self", "cls", "args", "kwargs")]
        raise ConfigError(f"{what}: unknown option(s) {unknown}; accepted: {accepted}.")
    return factory(*args, **kwargs)


def _open_builtin(name: str, options: dict[str, Any]) -> DataSource:
    if name not in builtin_names():
        raise ConfigError(
            f"unknown builtin dataset {name!r}; available: {', '.join(builtin_names())}."
        )
    return _call(load_builtin, f"builtin:{name}", name, **options)


def _open_torchvision(name: str, options: dict[str, Any]) -> DataSource:
    opts = dict(options)
    root = opts.pop("root", None)
    if root is None:
        raise ConfigError(f"torchvision:{name} needs root=DIR, the folder holding the dataset.")
    return TorchvisionSource.open(name, root, **opts)


def _open_table(path: Path, options: dict[str, Any]) -> DataSource:
    opts = dict(options)
    modality = opts.pop("modality", None)
    if modality is None:
        if "text_column" in opts:
            modality = "text"
        elif "path_column" in opts or "root" in opts:
            modality = "image"
        else:
            cols = table_columns(path)
            has_text, has_path = "text" in cols, "path" in cols
            if has_text == has_path:
                why = (
                    "both a 'text' and a 'path' column"
                    if has_text
                    else "neither a 'text' nor a 'path' column"
                )
                raise ConfigError(
                    f"{str(path)!r} has {why} (columns: {cols}); pass text_column=... for texts "
                    "or path_column=... for image files."
                )
            modality = "text" if has_text else "image"
    if modality == "text":
        return _call(TextTableSource, f"text table {str(path)!r}", path, **opts)
    if modality == "image":
        return _call(ImageTableSource, f"image table {str(path)!r}", path, **opts)
    raise ConfigError(f"modality={modality!r}; use 'text' or 'image'.")


def _open_path(path: Path, options: dict[str, Any]) -> DataSource:
    if path.is_dir():
        return _call(ImageFolderSource, f"image folder {str(path)!r}", path, **options)
    if path.is_file():
        if is_table(path):
            return _open_table(path, options)
        raise ConfigError(
            f"{str(path)!r} is neither a folder of images nor a table file. Use one of: {FORMS}."
        )
    raise ConfigError(f"{str(path)!r} does not exist ({nearby(path)}). Use one of: {FORMS}.")


def open_source(spec: str | Path | Mapping[str, Any] | DataSource, **kwargs: Any) -> DataSource:
    """Open a data source from a spec.

    Parameters
    ----------
    spec
        ``"builtin:digits?limit=500&split=train"``; ``"torchvision:FashionMNIST?root=data"``;
        a folder of images (→ :class:`ImageFolderSource`); a ``.csv``/``.tsv``/``.jsonl``
        (optionally compressed) or ``.parquet`` table (→ :class:`TextTableSource` when
        ``text_column`` is given or a ``text`` column exists, else
        :class:`ImageTableSource`); a dict with one of the keys ``builtin``, ``torchvision``
        or ``path`` plus options; or a DataSource, returned as it is.
    kwargs
        Options for the source (they override those in the spec).

    Returns
    -------
    DataSource

    Raises
    ------
    ConfigError
        An unknown form, name, option or path; the message lists what exists.

    Examples
    --------
    >>> src = open_source("builtin:digits?limit=50")
    >>> src.modality, len(src)
    ('image', 50)
    >>> len(open_source({"builtin": "digits", "limit": 20, "split": "test"}))
    20
    """
    if isinstance(spec, DataSource) and not isinstance(spec, str | Path | Mapping):
        if kwargs:
            raise ConfigError("options were given with a ready DataSource; pass a spec instead.")
        return spec
    if isinstance(spec, Mapping):
        opts = {**spec, **kwargs}
        keys = [k for k in ("builtin", "torchvision", "path") if k in opts]
        if len(keys) != 1:
            raise ConfigError(
                f"a source dict needs exactly one of 'builtin', 'torchvision', 'path' "
                f"(got keys {sorted(opts)}). Forms: {FORMS}."
            )
        key = keys[0]
        target = opts.pop(key)
        if key == "builtin":
            return _open_builtin(str(target), opts)
        if key == "torchvision":
            return _open_torchvision(str(target), opts)
        return _open_path(Path(target).expanduser(), opts)
    if isinstance(spec, str):
        for scheme, opener in (("builtin:", _open_builtin), ("torchvision:", _open_torchvision)):
            if spec.startswith(scheme):
                name, _, query = spec[len(scheme) :].partition("?")
                return opener(name, {**_parse_query(spec, query), **kwargs})
        if spec.split(":", 1)[0] in ("hf", "huggingface", "datasets") or (
            ":" in spec and not Path(spec).exists() and len(spec.split(":", 1)[0]) > 1
        ):
            raise ConfigError(f"unknown source {spec!r}. Use one of: {FORMS}.")
        return _open_path(Path(spec).expanduser(), kwargs)
    if isinstance(spec, Path):
        return _open_path(spec.expanduser(), kwargs)
    raise ConfigError(f"cannot open a source from a {type(spec).__name__}. Use one of: {FORMS}.")
