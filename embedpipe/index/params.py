"""Search-time knobs of FAISS indexes (IVF ``nprobe``, HNSW ``efSearch``): find, get, set.

Each knob is a :class:`SearchParam` that knows how to find the part of an index it applies to
(through pre-transforms, refinement and id maps), its useful range, and how to read and set
it. Index types (:mod:`embedpipe.index.kinds`) name theirs; an index made from a raw factory
string is matched against :data:`SEARCH_PARAMS` in order. FAISS is imported when a knob is
used, not when this module is.

Examples
--------
>>> import faiss
>>> index = faiss.index_factory(16, "HNSW16")
>>> search_param(index), param_range(index)
('efSearch', (16, 4096))
>>> set_search_params(index, {"efSearch": 48}); get_search_params(index)
{'efSearch': 48}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import faiss

EF_SEARCH_MAX = 4096


def hnsw_of(index: faiss.Index) -> Any:
    """The HNSW index inside ``index`` (through pre-transforms, refinement and id maps), if any."""
    import faiss

    idx = faiss.downcast_index(index)
    for _ in range(8):
        if hasattr(idx, "hnsw"):
            return idx
        inner = getattr(idx, "index", None) or getattr(idx, "base_index", None)
        if inner is None:
            return None
        idx = faiss.downcast_index(inner)
    return None


def _ivf(index: faiss.Index) -> Any:
    import faiss

    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


class SearchParam:
    """A search-time knob: more is slower and finds more of the true neighbours.

    Attributes
    ----------
    name
        The FAISS ``ParameterSpace`` name (``nprobe``, ``efSearch``).
    """

    name: str = ""

    def target(self, index: faiss.Index) -> Any:
        """The part of ``index`` holding the knob, or ``None`` when it does not apply."""
        raise NotImplementedError

    def applies(self, index: faiss.Index) -> bool:
        return self.target(index) is not None

    def range(self, index: faiss.Index) -> tuple[int, int]:
        """The useful ``(low, high)`` values."""
        raise NotImplementedError

    def get(self, index: faiss.Index) -> int:
        raise NotImplementedError

    def clip(self, index: faiss.Index, value: int) -> int:
        """``value`` brought into the range where it means something (≥ 1)."""
        return max(int(value), 1)

    def set(self, index: faiss.Index, value: int) -> None:
        import faiss

        faiss.ParameterSpace().set_index_parameter(index, self.name, int(value))

    def parameters(self, index: faiss.Index, sel: Any) -> Any:
        """FAISS ``SearchParameters`` with the current value and an id selector ``sel``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"SearchParam({self.name!r})"


class _NProbe(SearchParam):
    name = "nprobe"

    def target(self, index: faiss.Index) -> Any:
        return _ivf(index)

    def range(self, index: faiss.Index) -> tuple[int, int]:
        return 1, int(self.target(index).nlist)

    def get(self, index: faiss.Index) -> int:
        return int(self.target(index).nprobe)

    def clip(self, index: faiss.Index, value: int) -> int:
        return min(max(int(value), 1), self.range(index)[1])

    def parameters(self, index: faiss.Index, sel: Any) -> Any:
        import faiss

        return faiss.SearchParametersIVF(sel=sel, nprobe=self.get(index))  # type: ignore[call-arg]


class _EfSearch(SearchParam):
    name = "efSearch"

    def target(self, index: faiss.Index) -> Any:
        return hnsw_of(index)

    def range(self, index: faiss.Index) -> tuple[int, int]:
        return 16, EF_SEARCH_MAX

    def get(self, index: faiss.Index) -> int:
        return int(self.target(index).hnsw.efSearch)

    def parameters(self, index: faiss.Index, sel: Any) -> Any:
        import faiss

        return faiss.SearchParametersHNSW(sel=sel, efSearch=self.get(index))  # type: ignore[attr-defined]


NPROBE: SearchParam = _NProbe()
EF_SEARCH: SearchParam = _EfSearch()
#: The knobs an index from a raw factory string is matched against, in order.
SEARCH_PARAMS: tuple[SearchParam, ...] = (NPROBE, EF_SEARCH)


def knob_of(index: faiss.Index) -> SearchParam | None:
    """The :class:`SearchParam` that applies to ``index``, or ``None`` (exact search)."""
    return next((p for p in SEARCH_PARAMS if p.applies(index)), None)


def search_param(index: faiss.Index) -> str | None:
    """``"nprobe"`` for IVF indexes, ``"efSearch"`` for HNSW ones, ``None`` for exact ones."""
    p = knob_of(index)
    return p.name if p else None


def param_range(index: faiss.Index) -> tuple[int, int]:
    """The useful range of the search parameter: nprobe ∈ [1, nlist], efSearch ∈ [16, 4096]."""
    p = knob_of(index)
    return p.range(index) if p else (0, 0)


def get_search_params(index: faiss.Index) -> dict[str, int]:
    """The current search parameter(s) of ``index``."""
    p = knob_of(index)
    return {p.name: p.get(index)} if p else {}


def check_search_params(index: faiss.Index, params: dict[str, int]) -> dict[str, int]:
    """Validate search parameters for ``index``; return them clipped to their useful range.

    An unknown name or a non-integer value raises a :class:`ConfigError`; out-of-range
    values are clipped (``nprobe`` to ``[1, nlist]``, ``efSearch`` to ≥ 1), not errors.
    """
    knob = knob_of(index)
    out = {}
    for name, value in params.items():
        if knob is None or name != knob.name:
            what = f"its only one is {knob.name!r}" if knob else "it is exact and has none"
            raise ConfigError(f"search parameter {name!r} does not apply to this index ({what}).")
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"search parameter {name}={value!r} is not an integer.")
        try:
            v = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"search parameter {name}={value!r} is not an integer.") from None
        out[name] = knob.clip(index, v)
    return out


def set_search_params(index: faiss.Index, params: dict[str, int]) -> None:
    """Set search parameters by name (validated by :func:`check_search_params`)."""
    knob = knob_of(index)
    for _, v in check_search_params(index, params).items():
        assert knob is not None  # checked above
        knob.set(index, v)


def excluding(index: faiss.Index, rows: Any, k: int = 0) -> tuple[Any, Any]:
    """``(SearchParameters, keep-alive)`` that leave ``rows`` out of every result, at the
    index's current search parameter (HNSW: ``efSearch`` raised to ``k`` when below it).
    Keep the second item referenced while searching."""
    import faiss
    import numpy as np

    batch = faiss.IDSelectorBatch(np.ascontiguousarray(rows, dtype=np.int64))
    sel = faiss.IDSelectorNot(batch)
    params = for_k(index, k, sel)
    if params is None:
        params = faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
    return params, (batch, sel)


def for_k(index: faiss.Index, k: int, sel: Any = None) -> Any:
    """Search parameters for ``k`` results: HNSW finds at most ``efSearch`` candidates, so
    ``efSearch`` is raised to ``k`` for this search (the index keeps its own value); None
    when nothing needs setting.

    Examples
    --------
    >>> import faiss, numpy as np
    >>> index = faiss.IndexHNSWFlat(4, 8)
    >>> index.add(np.random.default_rng(0).random((3000, 4), dtype=np.float32))
    >>> q = index.reconstruct_n(0, 1)
    >>> int((index.search(q, 1000)[1] >= 0).sum()) < 1000  # efSearch 16: hits go missing
    True
    >>> int((index.search(q, 1000, params=for_k(index, 1000))[1] >= 0).sum())
    1000
    """
    knob = knob_of(index)
    if knob is None:
        return None
    if knob is EF_SEARCH:
        import faiss

        ef = max(knob.get(index), int(k))
        if sel is None and ef == knob.get(index):
            return None
        return faiss.SearchParametersHNSW(sel=sel, efSearch=ef)  # type: ignore[attr-defined]
    return knob.parameters(index, sel) if sel is not None else None
