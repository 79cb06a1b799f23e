"""The FastAPI application of the query server (imported only once FastAPI is known to be there).

See :mod:`embedpipe.index.server` for the endpoints.
"""

from __future__ import annotations

import contextlib
import io
import logging
import time
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from fastapi import FastAPI, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..encoding.loader import decoding_for_encoder
from ..errors import EmbedpipeError, FingerprintMismatchError, ItemError, NotFoundError
from .similarity import Neighbor, SimilarityIndex

log = logging.getLogger(__name__)

MAX_K = 1000
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
#: Largest JSON request body (a 4,096-d vector takes about 80 KB).
MAX_BODY_BYTES = 1024 * 1024
#: Longest text query, in characters (the store keeps texts cut to 2,000 characters too).
MAX_QUERY_CHARS = 2000
THUMB_SIZES = (16, 512)


def _check_query_text(text: str, what: str = "query") -> str:
    """A text query a backbone can encode: valid Unicode (no lone surrogates), not too long."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _BadRequest(
            400, f"{what} is not valid Unicode (position {e.start}: {e.reason}); send UTF-8 text."
        ) from None
    if len(text) > MAX_QUERY_CHARS:
        raise _BadRequest(
            400,
            f"{what} of {len(text)} characters is longer than the limit of {MAX_QUERY_CHARS}; "
            "send a shorter one.",
        )
    return text


class _BodyLimit:
    """ASGI middleware: refuse request bodies over a limit with a 413, whether or not the
    client sent a Content-Length (chunked bodies are counted as they arrive)."""

    def __init__(self, app: Any, limit_for: Any) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await _too_large(send, limit)
                return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await _too_large(send, limit)


class _BodyTooLarge(StarletteHTTPException):
    """Raised while a body is read (FastAPI passes HTTP exceptions through as answers)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit:,} bytes; send a smaller one.")
        self.limit = limit


async def _too_large(send: Any, limit: int) -> None:
    import json

    body = json.dumps(
        {"detail": f"request body larger than {limit:,} bytes; send a smaller one."}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class SearchRequest(BaseModel):
    """Body of ``POST /search``: exactly one of ``query``, ``id``, ``vector``."""

    model_config = ConfigDict(extra="forbid")

    query: str | None = None
    id: str | None = None
    vector: list[float] | None = None
    fingerprint: str | None = None
    k: int = 10
    where: str | None = None

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        given = [n for n in ("query", "id", "vector") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of 'query' (text), 'id' (an indexed item) or 'vector'"
                + (f"; got {given}" if given else "")
            )
        return self


def http_message(e: EmbedpipeError) -> str:
    """An error as an HTTP client should read it: what was wrong with the request, without
    the command-line advice (flags, skipping bad items) meant for a person at a terminal.

    Examples
    --------
    >>> http_message(ItemError("cat.png", "not a readable image (unknown or corrupt format)"))
    "upload 'cat.png': not a readable image (unknown or corrupt format); send an image file (PNG, JPEG, WebP...)."
    """
    if isinstance(e, ItemError):
        return f"upload {e.item_id!r}: {e.reason}; send an image file (PNG, JPEG, WebP...)."
    return e.worded({})


class _BadRequest(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _static_dir() -> Path:
    return Path(str(resources.files("embedpipe.index") / "static"))


def _check_k(k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise _BadRequest(400, f"k={k!r}: ask for 1 to {MAX_K} neighbours.")
    return k


def build_app(index: SimilarityIndex, *, title: str | None = None) -> FastAPI:
    """The FastAPI app of :func:`embedpipe.index.server.create_app`.

    Each request takes the index once, at its start, from a :class:`LiveIndex`: an update
    swapped into the folder is served from the next request on, without a restart.
    """
    from .live import LiveIndex

    live = LiveIndex(index)
    name = title or (index.path.name if index.path else "embedpipe index")
    # FastAPI's /docs and /redoc pages load Swagger UI / ReDoc from a CDN, which an offline
    # machine cannot reach: they are off, and /docs is a plain page built from the OpenAPI
    # schema here (served with /openapi.json, no script, no CDN).
    app = FastAPI(title=f"embedpipe search: {name}", docs_url=None, redoc_url=None)
    static = _static_dir()
    app.mount("/static", StaticFiles(directory=static), name="static")
    app.add_middleware(
        _BodyLimit,
        limit_for=lambda path: (
            MAX_UPLOAD_BYTES + 64 * 1024 if path == "/search/image" else MAX_BODY_BYTES
        ),
    )

    @app.exception_handler(_BadRequest)
    async def _bad(_: Request, e: _BadRequest) -> JSONResponse:
        return JSONResponse({"detail": e.detail}, status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        parts = []
        for err in e.errors():
            loc = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return JSONResponse({"detail": "invalid request: " + "; ".join(parts)}, status_code=422)

    @app.exception_handler(Exception)
    async def _crash(_: Request, e: Exception) -> JSONResponse:
        # The exception goes to the server's log only: its text can hold paths and data.
        log.exception("internal error while serving a request")
        return JSONResponse(
            {"detail": "internal error; the server log has the details"}, status_code=500
        )

    def thumb_url(index: SimilarityIndex, hit: Neighbor) -> str | None:
        if not index.meta.sources[int(index.source[hit.row])].image_root:
            return None
        return f"/thumbnail?id={quote(hit.id, safe='')}"

    def answer(
        index: SimilarityIndex,
        query: dict[str, Any],
        k: int,
        t0: float,
        hits: list[Neighbor],
        where: str | None = None,
    ) -> dict[str, Any]:
        out = {
            "query": query,
            "k": k,
            "took_ms": round((time.perf_counter() - t0) * 1000, 2),
            "metric": index.metric,
            "closer": index.closer,
            "results": [
                {**h.to_dict(), "content": h.content, "thumbnail": thumb_url(index, h)}
                for h in hits
            ],
        }
        if where is not None:
            out["where"] = where
            out["matching"] = int(index.where_mask(where).sum())
        return out

    def check_where(index: SimilarityIndex, where: str | None) -> str | None:
        if where is None or not where.strip():
            return None
        _check_query_text(where, "where")
        try:
            index.where_mask(where)
        except EmbedpipeError as e:
            raise _BadRequest(400, str(e)) from None
        return where

    def _decoding(index: SimilarityIndex) -> contextlib.AbstractContextManager[None]:
        """An upload decoded as the index's stores decoded their images (a text index: as
        any image, for the bad-image error to come first)."""
        try:
            return decoding_for_encoder(index.query_encoder("image"))
        except EmbedpipeError:
            return contextlib.nullcontext()

    def encoder_ready(index: SimilarityIndex) -> None:
        try:
            index.encoder()
        except Exception as e:  # noqa: BLE001 - any loading failure means raw queries are off
            raise _BadRequest(
                503,
                f"this server cannot encode raw queries ({type(e).__name__}: {e}); search by "
                "id or vector instead",
            ) from None

    def run(req: SearchRequest) -> dict[str, Any]:
        index = live.get()
        k = _check_k(req.k)
        t0 = time.perf_counter()
        where = check_where(index, req.where)
        query: dict[str, Any]
        shown: dict[str, Any]
        try:
            if req.query is not None:
                _check_query_text(req.query)
                encoder_ready(index)
                query, shown = {"texts": [req.query]}, {"type": "text", "value": req.query}
            elif req.id is not None:
                _check_query_text(req.id, "id")
                query, shown = {"ids": [req.id]}, {"type": "id", "value": req.id}
            else:
                vec = np.asarray(req.vector, dtype=np.float32)
                query = {"vectors": vec, "fingerprint": req.fingerprint}
                shown = {"type": "vector", "dim": int(vec.size)}
            hits = index.find(**query, k=k, where=where)[0]
            return answer(index, shown, k, t0, hits, where)
        except FingerprintMismatchError as e:
            raise _BadRequest(409, str(e)) from None
        except (NotFoundError, KeyError) as e:  # an id that is not in the index
            raise _BadRequest(404, str(e.args[0]) if e.args else "unknown id") from None
        except EmbedpipeError as e:
            raise _BadRequest(400, http_message(e)) from None

    @app.get("/health")
    def health() -> dict[str, Any]:
        index = live.get()
        return {
            "status": "ok",
            "name": name,
            **index.describe(),
            "query_modalities": index.query_modalities(),
            "columns": index.column_names,
            "reloads": live.reloads,
        }

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(_docs_page(app.openapi()))

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    @app.post("/search")
    def search_post(req: SearchRequest) -> dict[str, Any]:
        return run(req)

    @app.get("/search")
    def search_get(
        q: str | None = Query(None, description="Text to search for."),
        id: str | None = Query(None, description="Id of an indexed item."),
        k: int = Query(10, description="Neighbours to return."),
        where: str | None = Query(None, description="A filter, e.g. label == 'x'."),
    ) -> dict[str, Any]:
        if (q is None) == (id is None):
            raise _BadRequest(400, "give exactly one of q= (text) or id= (an indexed item)")
        return run(SearchRequest(query=q, id=id, k=k, where=where))

    @app.post("/search/image")
    def search_image(
        file: UploadFile = File(...), k: int = Form(10), where: str | None = Form(None)
    ) -> dict[str, Any]:
        index = live.get()
        k = _check_k(k)
        where = check_where(index, where)
        data = file.file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise _BadRequest(
                413, f"image larger than {MAX_UPLOAD_BYTES // 2**20} MiB; send a smaller one."
            )
        t0 = time.perf_counter()
        try:
            from .queries import decode_image

            encoder_ready(index)
            with _decoding(index):
                img = decode_image(data, file.filename or "upload")
            hits = index.find(images=[img], k=k, where=where)[0]
        except EmbedpipeError as e:
            raise _BadRequest(400, http_message(e)) from None
        return answer(index, {"type": "image", "value": file.filename}, k, t0, hits, where)

    @app.get("/thumbnail")
    def thumbnail(
        id: str = Query(..., description="Id of an indexed image."), size: int = Query(160)
    ) -> Response:
        if not THUMB_SIZES[0] <= size <= THUMB_SIZES[1]:
            raise _BadRequest(
                400, f"size={size}: thumbnails are {THUMB_SIZES[0]} to {THUMB_SIZES[1]} pixels."
            )
        path = live.get().image_path(id)
        if path is None:
            raise _BadRequest(404, f"no image for id {id!r} in this index.")
        try:
            data = _thumbnail(str(path), path.stat().st_mtime_ns, size)
        except OSError as e:
            raise _BadRequest(404, f"image of {id!r} cannot be read: {e}") from None
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    return app


def _docs_page(spec: dict[str, Any]) -> str:
    """The API's endpoints as a plain HTML page (from the OpenAPI schema; works offline)."""
    from html import escape

    rows = []
    for path, ops in sorted(spec.get("paths", {}).items()):
        for method, op in ops.items():
            params = ", ".join(
                f"{p['name']} ({p.get('in', '')})" for p in op.get("parameters", []) or []
            )
            body = "JSON or form body" if "requestBody" in op else ""
            rows.append(
                f"<tr><td><code>{escape(method.upper())}</code></td><td><code>{escape(path)}"
                f"</code></td><td>{escape(op.get('summary', ''))}</td><td>{escape(params)}"
                f"{'; ' if params and body else ''}{escape(body)}</td></tr>"
            )
    title = escape(spec.get("info", {}).get("title", "embedpipe search"))
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}: API</title>"
        "<link rel='stylesheet' href='/static/style.css'></head><body><main>"
        f"<h1>{title}: API</h1><p>The machine-readable schema is <a href='/openapi.json'>"
        "/openapi.json</a>; the search page is <a href='/'>/</a>.</p>"
        "<table><thead><tr><th>method</th><th>path</th><th>what</th><th>parameters</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></main></body></html>"
    )


@lru_cache(maxsize=1024)
def _thumbnail(path: str, mtime_ns: int, size: int) -> bytes:
    from PIL import Image, ImageOps

    from ..data.images import to_rgb

    with Image.open(path) as src:
        src.draft("RGB", (size, size))
        img = to_rgb(ImageOps.exif_transpose(src) or src)
    img.thumbnail((size, size))
    if max(img.size) < size:  # tiny images (8×8 digits) are upscaled, kept sharp
        scale = size / max(img.size)
        new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(new, Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()
