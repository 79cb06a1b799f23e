"""The query server: a JSON API and a small web page over a saved index.

Needs FastAPI and uvicorn (``pip install embedpipe[serve]``), imported only when a server is
made. Endpoints:

- ``GET /health``: status and a summary of the index.
- ``POST /search``: JSON ``{"query": "text"}``, ``{"id": "..."}`` or ``{"vector": [...]}``,
  with ``"k"`` (default 10). ``GET /search?q=...`` / ``?id=...&k=...`` does the same.
- ``POST /search/image``: multipart form with an image ``file`` and ``k``.
- ``GET /thumbnail?id=...``: a JPEG thumbnail of an indexed image (when the index knows its
  folder; nothing outside that folder can be read).
- ``GET /``: the search page (``static/``).
- ``GET /docs``: the endpoints as a plain page; ``GET /openapi.json``: the OpenAPI schema.
  (FastAPI's Swagger UI and ReDoc pages are off: they load their scripts from a CDN.)

Each hit carries its item's ``content`` (text, or image path / URL / key) and label. A text
query (or a dual encoder's other modality: text over an image index) goes through the
index's backbone. A bad request gets a 4xx answer whose ``detail`` says what is wrong (invalid
Unicode, a query over 2,000 characters, a body over 1 MiB, or an image over 20 MiB, included);
an internal error answers 500 without its exception text (that goes to the log); nothing a
client sends stops the server.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .similarity import SimilarityIndex

log = logging.getLogger(__name__)

_SERVE_MODULES = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "python_multipart": "python-multipart",
}


def require_serve() -> None:
    """Raise a :class:`ConfigError` naming ``pip install embedpipe[serve]`` if FastAPI,
    uvicorn or python-multipart cannot be imported."""
    import importlib

    missing = []
    for mod, dist in _SERVE_MODULES.items():
        try:
            importlib.import_module(mod)
        except ImportError:
            missing.append(dist)
    if missing:
        raise ConfigError(
            f"the query server needs {', '.join(missing)}, which is not installed. Install the "
            "server extra: pip install embedpipe[serve]"
        )


def create_app(
    index: SimilarityIndex,
    *,
    title: str | None = None,
    routes: Callable[[Any], None] | None = None,
) -> Any:
    """A FastAPI app serving ``index`` (see the module docstring for the endpoints).

    Parameters
    ----------
    index
        A loaded :class:`SimilarityIndex`.
    title
        Shown on the page; default: the index folder's name.
    routes
        Called with the app to add more routes (``embedpipe serve`` adds the embedding map
        this way: ``embedpipe.report.map_server.add_map_routes``).

    Raises
    ------
    ConfigError
        FastAPI, uvicorn or python-multipart is missing (names ``pip install embedpipe[serve]``).

    Examples
    --------
    >>> import numpy as np
    >>> from fastapi.testclient import TestClient
    >>> from embedpipe.index import build_index
    >>> from embedpipe.store import StoreWriter
    >>> X = np.eye(4, dtype="float32")
    >>> w = StoreWriter.create("s.h5", dim=4, fingerprint="fp", backbone={"name": "demo"})
    >>> w.append(X, ["a", "b", "c", "d"], [bytes(16)] * 4, np.full(4, -1)); w.finalize()
    >>> client = TestClient(create_app(build_index("s.h5", "flat")))
    >>> client.post("/search", json={"id": "a", "k": 1}).json()["results"][0]["id"]
    'b'
    """
    require_serve()
    from .app import build_app

    app = build_app(index, title=title)
    if routes is not None:
        routes(app)
    return app


def serve(
    index: str | Path | SimilarityIndex,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    image_root: str | Path | None = None,
    preload: bool = True,
    log_level: str = "info",
    routes: Callable[[Any], None] | None = None,
) -> None:
    """Serve an index over HTTP until interrupted.

    Parameters
    ----------
    index
        A saved index folder or a loaded index.
    host, port
        Where to listen (default: this machine only).
    image_root
        Where the indexed images are now, for thumbnails (if they moved).
    preload
        Load the backbone before accepting requests, so the first raw query is fast. A
        backbone that cannot be loaded only disables text/image queries (id and vector
        queries still work).
    routes
        Adds more routes to the app (see :func:`create_app`).
    """
    require_serve()
    import uvicorn

    idx = (
        index
        if isinstance(index, SimilarityIndex)
        else SimilarityIndex.load(index, image_root=image_root)
    )
    if isinstance(index, SimilarityIndex) and image_root is not None:
        idx.set_image_root(image_root)
    if preload:
        try:
            idx.encoder()
        except Exception as e:  # noqa: BLE001
            log.warning("raw text/image queries are disabled: cannot load the backbone: %s", e)
    uvicorn.run(create_app(idx, routes=routes), host=host, port=port, log_level=log_level)
