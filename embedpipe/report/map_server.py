"""The embedding map on the query server: ``GET /map`` (the page, built once on first request
by curating the index's stores) and ``GET /map/ready``. ``embedpipe serve`` adds these routes
through :func:`embedpipe.index.server.create_app`'s ``routes`` hook."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .embedding_map import MAX_POINTS, Projection, map_data, render_map


class MapPage:
    """The map page of some stores, built once (thread-safe) and kept in memory."""

    def __init__(
        self,
        stores: Sequence[str | Path],
        *,
        title: str = "Embedding map",
        projection: Projection = "auto",
        labels: bool = True,
        max_points: int = MAX_POINTS,
        seed: int = 0,
    ) -> None:
        self.stores = [Path(s) for s in stores]
        self.title = title
        self.projection = projection
        self.labels = labels
        self.max_points = max_points
        self.seed = seed
        self._html: str | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._html is not None

    def html(self) -> str:
        """The page (curated and projected on the first call)."""
        with self._lock:
            if self._html is None:
                from ..curate import curate

                result = curate(self.stores, labels=self.labels, seed=self.seed)
                data = map_data(
                    result, max_points=self.max_points, method=self.projection, seed=self.seed
                )
                self._html = render_map(data, title=self.title, nav=[("search", "/")])
            return self._html


def add_map_routes(app: Any, page: MapPage) -> None:
    """Add ``GET /map`` (the page) and ``GET /map/ready`` (``{"built": bool}``) to a FastAPI
    app.

    Examples
    --------
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> add_map_routes(app, MapPage(["train.h5"]))
    >>> sorted(r.path for r in app.routes if r.path.startswith("/map"))
    ['/map', '/map/ready']
    """
    from fastapi.responses import HTMLResponse

    @app.get("/map", response_class=HTMLResponse, include_in_schema=True)
    def embedding_map() -> HTMLResponse:
        """The embedding map of the indexed stores (built on the first request)."""
        return HTMLResponse(page.html())

    @app.get("/map/ready")
    def embedding_map_ready() -> dict[str, Any]:
        """Whether the map page is already built (the first ``/map`` builds it)."""
        return {"available": True, "built": page.built, "stores": [str(s) for s in page.stores]}
