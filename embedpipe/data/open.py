"""One entry point from a spec (string, path or dict) to a DataSource, through the registry
of source forms (:mod:`embedpipe.data.forms`): nothing here names a form."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, NotFoundError
from ..registry import did_you_mean
from ._paths import nearby
from .base import DataSource
from .forms import all_forms, forms_help, parse_query, path_forms, scheme_forms


def _open_path(path: Path, options: dict[str, Any]) -> DataSource:
    for form in path_forms():
        if form.matches(path):
            return form.open(path, options)
    if path.exists():
        raise ConfigError(
            f"{str(path)!r} is neither a folder of images nor a table file. "
            f"Use one of: {forms_help()}."
        )
    raise ConfigError(f"{str(path)!r} does not exist ({nearby(path)}). Use one of: {forms_help()}.")


def _unknown_scheme(spec: str, scheme: str, schemes: list[str]) -> NotFoundError:
    return NotFoundError(
        f"unknown source {spec!r}: no source form {scheme + ':'!r}"
        f"{did_you_mean(scheme, schemes) or ';'} use one of: {forms_help()}."
    )


def open_source(spec: str | Path | Mapping[str, Any] | DataSource, **kwargs: Any) -> DataSource:
    """Open a data source from a spec.

    Parameters
    ----------
    spec
        A string ``"SCHEME:NAME?key=value&..."`` of a scheme form (``builtin:digits?limit=500``,
        ``torchvision:FashionMNIST?root=data``, ``hf:imdb?split=test``); a local path (options
        may follow it too: ``"my_dataset?split=test"``), claimed by a path form (a Hugging Face ``datasets`` folder, a folder of images, a table file:
        ``.csv``/``.tsv``/``.jsonl``, compressed or not, ``.parquet``, ``.arrow``); a dict with
        one scheme key or ``path`` plus options (``{"builtin": "digits", "limit": 500}``); or a
        DataSource, returned as it is. The forms are those registered in
        :data:`~embedpipe.data.forms.SOURCE_FORMS` (plugins included).
    kwargs
        Options for the source (they override those in the spec), e.g. ``text_column``,
        ``label_column``, ``keep_columns``.

    Returns
    -------
    DataSource

    Raises
    ------
    NotFoundError
        An unknown form, dataset name or column (with a close match).
    ConfigError
        A bad option or path; the message lists what exists.

    Examples
    --------
    >>> src = open_source("builtin:digits?limit=50")
    >>> src.modality, len(src)
    ('image', 50)
    >>> len(open_source({"builtin": "digits", "limit": 20, "split": "test"}))
    20
    >>> open_source("bultin:digits")
    Traceback (most recent call last):
    ...
    embedpipe.errors.NotFoundError: unknown source 'bultin:digits': no source form 'bultin:'; did you mean 'builtin'? ...
    """
    if isinstance(spec, DataSource) and not isinstance(spec, str | Path | Mapping):
        if kwargs:
            raise ConfigError("options were given with a ready DataSource; pass a spec instead.")
        return spec
    if isinstance(spec, Mapping):
        opts = {**spec, **kwargs}
        schemes = scheme_forms()
        keys = [k for k in (*schemes, "path") if k in opts]
        if len(keys) != 1:
            named = ", ".join(repr(k) for k in (*sorted(schemes), "path"))
            raise ConfigError(
                f"a source dict needs exactly one of {named} (got keys {sorted(opts)}). "
                f"Forms: {forms_help()}."
            )
        key = keys[0]
        target = opts.pop(key)
        if key == "path":
            return _open_path(Path(target).expanduser(), opts)
        return schemes[key].open(str(target), opts)
    if isinstance(spec, str):
        scheme, sep, rest = spec.partition(":")
        # "C:\\data" (a drive letter) and existing paths with a colon are paths.
        if sep and len(scheme) > 1 and "/" not in scheme and not Path(spec).exists():
            schemes = scheme_forms()
            form = schemes.get(scheme)
            if form is None:
                raise _unknown_scheme(spec, scheme, sorted(schemes))
            name, _, query = rest.partition("?")
            return form.open(name, {**parse_query(spec, query), **kwargs})
        path, _, query = spec.partition("?")
        if query and not Path(spec).expanduser().exists():  # "data/hf_folder?split=test"
            return _open_path(Path(path).expanduser(), {**parse_query(spec, query), **kwargs})
        return _open_path(Path(spec).expanduser(), kwargs)
    if isinstance(spec, Path):
        return _open_path(spec.expanduser(), kwargs)
    raise ConfigError(
        f"cannot open a source from a {type(spec).__name__}. Use one of: {forms_help()}."
    )


def source_forms() -> list[dict[str, Any]]:
    """The registered source forms, described (name, scheme, help).

    Examples
    --------
    >>> [f["name"] for f in source_forms()][:3]
    ['arrow', 'builtin', 'csv']
    """
    return [form.describe() for form in all_forms()]
