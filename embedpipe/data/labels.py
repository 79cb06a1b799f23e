"""Mapping raw label values (strings or integers, some missing) to class indices."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ConfigError

log = logging.getLogger(__name__)
#: Label texts taken as "no label", like a blank cell (case-insensitive): how pandas and
#: spreadsheets write a missing number. (Folder names, ``as_strings``, are always classes.)
MISSING_WORDS = frozenset({"nan"})


def _normalise(value: Any, as_strings: bool = False) -> int | str | None:
    """One raw label → int, str, or None (missing)."""
    if value is None:
        return None
    if as_strings:
        return str(value) if str(value).strip() else None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return None
        return int(value) if value.is_integer() else str(value)
    s = str(value).strip()
    if not s or s.lower() in MISSING_WORDS:
        return None
    try:
        n = int(s)
    except ValueError:
        return s
    # Only canonical decimals count as numbers: "007" stays the class name "007".
    return n if str(n) == s else s


def encode_labels(
    values: Sequence[Any] | np.ndarray,
    classes: Sequence[str] | None = None,
    *,
    what: str = "labels",
    ids: Sequence[str] | None = None,
    as_strings: bool = False,
) -> tuple[np.ndarray, list[str]]:
    """Map raw labels to int64 class indices and the class-name list.

    Missing values (``None``, NaN, empty strings, the text ``"NaN"`` in any case) become
    ``-1``. Without ``classes``, the class
    names are the distinct values sorted: numerically when every value is an integer (``"2"``
    before ``"10"``; names are the decimal strings), else as strings. Pass ``classes`` to fix the
    order, e.g. so a test split maps like its train split even when it lacks a class.

    Parameters
    ----------
    values
        One raw label per item.
    classes
        Class names in the wanted order; every present label must be one of them.
    what
        How to name the labels in error messages (``"column 'label'"``).
    ids
        Item ids, to name the items in error messages.
    as_strings
        Take every value as a name and sort as strings (folder names, like torchvision).

    Returns
    -------
    labels, classes
        ``labels`` int64 array (``-1`` = no label) and the class names.

    Raises
    ------
    ConfigError
        A label that is not in ``classes``.
    """
    norm = [_normalise(v, as_strings) for v in values]
    if not as_strings:
        words = sum(1 for v in values if isinstance(v, str) and v.strip().lower() in MISSING_WORDS)
        if words:
            log.warning(
                "%s: %d label(s) read %r; they are taken as missing (unlabelled), like blank ones",
                what,
                words,
                "NaN",
            )
    present = {v for v in norm if v is not None}
    if classes is None:
        if all(isinstance(v, int) for v in present):
            names = [str(v) for v in sorted(present)]  # type: ignore[type-var]
        else:
            names = sorted({str(v) for v in present})
    else:
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            raise ConfigError(f"classes {names} contain duplicates; give each class name once.")
    index = {name: k for k, name in enumerate(names)}
    labels = np.full(len(norm), -1, dtype=np.int64)
    unknown: dict[str, str] = {}
    for k, v in enumerate(norm):
        if v is None:
            continue
        j = index.get(str(v))
        if j is None:
            unknown.setdefault(str(v), ids[k] if ids is not None else f"#{k}")
        else:
            labels[k] = j
    if unknown:
        shown = ", ".join(f"{v!r} (item {i!r})" for v, i in list(unknown.items())[:10])
        raise ConfigError(
            f"{what}: {len(unknown)} value(s) not among the given classes {names}: {shown}. "
            "Add them to classes, or leave classes unset to take the sorted distinct labels."
        )
    return labels, names


def int_labels(
    labels: Sequence[int] | np.ndarray, classes: Sequence[str], *, what: str = "labels"
) -> np.ndarray:
    """Validate integer class indices (``-1`` = none) against a class list."""
    arr = np.asarray(labels)
    if arr.dtype.kind not in "iu":
        raise ConfigError(
            f"{what} must be integers when classes are given as indices, not {arr.dtype}."
        )
    arr = arr.astype(np.int64)
    bad = (arr < -1) | (arr >= len(classes))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ConfigError(
            f"{what}: value {int(arr[k])} at position {k} is not a class index in 0..{len(classes) - 1} "
            f"(classes {list(classes)}); use -1 for 'no label'."
        )
    return arr
