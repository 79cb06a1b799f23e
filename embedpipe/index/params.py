"""The search-time knob of a FAISS index (IVF ``nprobe``, HNSW ``efSearch``): find, get, set."""

from __future__ import annotations

from typing import Any

import faiss

from ..errors import ConfigError

EF_SEARCH_MAX = 4096


def hnsw_of(index: faiss.Index) -> Any:
    """The HNSW index inside ``index`` (through pre-transforms, refinement and id maps), if any."""
    idx = faiss.downcast_index(index)
    for _ in range(8):
        if hasattr(idx, "hnsw"):
            return idx
        inner = getattr(idx, "index", None) or getattr(idx, "base_index", None)
        if inner is None:
            return None
        idx = faiss.downcast_index(inner)
    return None


def _ivf(index: faiss.Index) -> faiss.IndexIVF | None:
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def search_param(index: faiss.Index) -> str | None:
    """``"nprobe"`` for IVF indexes, ``"efSearch"`` for HNSW ones, ``None`` for exact ones."""
    if _ivf(index) is not None:
        return "nprobe"
    if hnsw_of(index) is not None:
        return "efSearch"
    return None


def param_range(index: faiss.Index) -> tuple[int, int]:
    """The useful range of the search parameter: nprobe ∈ [1, nlist], efSearch ∈ [16, 4096]."""
    ivf = _ivf(index)
    if ivf is not None:
        return 1, int(ivf.nlist)
    if hnsw_of(index) is not None:
        return 16, EF_SEARCH_MAX
    return 0, 0


def get_search_params(index: faiss.Index) -> dict[str, int]:
    """The current search parameter(s) of ``index``."""
    ivf = _ivf(index)
    if ivf is not None:
        return {"nprobe": int(ivf.nprobe)}
    hnsw = hnsw_of(index)
    if hnsw is not None:
        return {"efSearch": int(hnsw.hnsw.efSearch)}
    return {}


def check_search_params(index: faiss.Index, params: dict[str, int]) -> dict[str, int]:
    """Validate search parameters for ``index``; return them clipped to their useful range.

    An unknown name or a non-integer value raises a :class:`ConfigError`; out-of-range
    values are clipped (``nprobe`` to ``[1, nlist]``, ``efSearch`` to ≥ 1), not errors.
    """
    known = search_param(index)
    out = {}
    for name, value in params.items():
        if name != known:
            what = f"its only one is {known!r}" if known else "it is exact and has none"
            raise ConfigError(f"search parameter {name!r} does not apply to this index ({what}).")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"search parameter {name}={value!r} is not an integer.")
        try:
            v = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"search parameter {name}={value!r} is not an integer.") from None
        _, hi = param_range(index)
        out[name] = min(max(v, 1), hi) if name == "nprobe" else max(v, 1)
    return out


def set_search_params(index: faiss.Index, params: dict[str, int]) -> None:
    """Set search parameters by name (validated by :func:`check_search_params`)."""
    for name, v in check_search_params(index, params).items():
        faiss.ParameterSpace().set_index_parameter(index, name, v)
