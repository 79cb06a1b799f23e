"""Decoding image files and arrays into PIL RGB images; hashing files."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps

from ..errors import ItemError
from ._paths import nearby
from .base import HASH_BYTES, content_hash

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg",
    ".jpeg",
    ".png",
    ".bmp",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
    ".ppm",
    ".pgm",
    ".pbm",
)

_CHUNK = 1 << 20
WHITE = (255, 255, 255)


def _scale_to_uint8(a: np.ndarray) -> np.ndarray:
    """High-bit-depth pixels → 8 bit (16-bit ranges divided by 257, floats in [0, 1] × 255)."""
    if a.dtype.kind == "f":
        a = np.nan_to_num(a.astype(np.float64))
        if a.max(initial=0.0) <= 1.0:
            a = a * 255.0
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    if a.max(initial=0) > 255:
        a = a.astype(np.float64) / 257.0
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL image → RGB: transparency is composited over white, 16/32-bit depth scaled."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(img))).convert("RGB")
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def keep_alpha(img: Image.Image) -> Image.Image:
    """Any PIL image → RGB, or RGBA where it has transparency (16/32-bit depth scaled): the
    backbone converts transparency its own library's way (``embedpipe.backbones.rgb``)."""
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode == "P" and "transparency" in img.info
    )
    if has_alpha:
        return img if img.mode == "RGBA" else img.convert("RGBA")
    return to_rgb(img)


def _refuse_truncated_loading(item_id: str, what: str) -> None:
    """Someone flipped PIL's global switch: truncated ``what`` would decode to grey garbage."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ItemError(
            item_id,
            f"PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True in this process, so truncated {what} "
            "cannot be detected; set it back to False",
        )


#: The longest side of an image may be at most this many times its shortest side: a backbone
#: resizes the shortest side to its input size, so a 1 x 100,000 strip would become a
#: 224 x 22,400,000 image (15 GB) before its centre is cropped.
MAX_ASPECT = 64


class ImageShapeError(ValueError):
    """An image whose shape no backbone can resize within bounded memory."""


def check_image_size(size: tuple[int, int]) -> None:
    """Raise :class:`ImageShapeError` for an empty image or one stretched past
    :data:`MAX_ASPECT`, before it is decoded.

    Examples
    --------
    >>> check_image_size((640, 480))
    >>> check_image_size((1, 100000))
    Traceback (most recent call last):
    ...
    embedpipe.data.images.ImageShapeError: the image is 1 x 100,000 pixels: its long side is 100,000 times its short side (at most 64); crop or pad it
    """
    w, h = int(size[0]), int(size[1])
    if w < 1 or h < 1:
        raise ImageShapeError(f"the image is {w:,} x {h:,} pixels (empty)")
    ratio = max(w, h) / min(w, h)
    if ratio > MAX_ASPECT:
        raise ImageShapeError(
            f"the image is {w:,} x {h:,} pixels: its long side is {ratio:,.0f} times its short "
            f"side (at most {MAX_ASPECT}); crop or pad it"
        )


#: A JPEG is decoded at a reduced scale (its DCT scaling: 1/2, 1/4, 1/8) only while its
#: shorter side stays at least this many times the size the model resizes it to: the
#: antialiased resize that follows then sees enough pixels that the features barely move (min
#: cosine 0.99992 to a full decode on 16 photos of 854-2562 px resized to 256 for MobileNetV2,
#: against 0.99914 with a margin of 2).
DRAFT_MARGIN = 3

_DRAFT_MIN_SIDE: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "embedpipe_draft_min_side", default=None
)


@contextlib.contextmanager
def decoding_for(min_side: int | None) -> Iterator[None]:
    """Decode JPEGs in the block at the smallest DCT scale whose shorter side is still
    ``DRAFT_MARGIN * min_side`` (``None``: full size), for a model that resizes the shorter
    side to ``min_side``.

    Examples
    --------
    >>> buf = io.BytesIO()
    >>> Image.new("RGB", (1600, 1200)).save(buf, format="JPEG")
    >>> with decoding_for(100):
    ...     decode_image_bytes(buf.getvalue(), "x").size
    (400, 300)
    >>> decode_image_bytes(buf.getvalue(), "x").size
    (1600, 1200)
    """
    token = _DRAFT_MIN_SIDE.set(min_side)
    try:
        yield
    finally:
        _DRAFT_MIN_SIDE.reset(token)


def _draft(im: Image.Image) -> None:
    """Ask a JPEG decoder for a reduced scale when :func:`decoding_for` allows one."""
    min_side = _DRAFT_MIN_SIDE.get()
    if not min_side or im.format != "JPEG":
        return
    w, h = im.size
    r = DRAFT_MARGIN * min_side / min(w, h)
    if r <= 0.5:  # PIL picks the smallest scale that keeps both sides at least this size
        im.draft(im.mode, (math.ceil(w * r), math.ceil(h * r)))


def decode_upright(fp: Path | io.BytesIO) -> Image.Image:
    """Open, fully decode (at a reduced scale inside :func:`decoding_for`) and EXIF-orient an
    image: RGB, or RGBA where it has transparency. PIL's errors propagate to the caller, which
    words them for a file, bytes or an upload: every image embedpipe decodes goes through here."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(fp) as im:
            check_image_size(im.size)
            _draft(im)
            im.load()
            # exif_transpose returns a new, fully loaded image (a copy when upright).
            upright = ImageOps.exif_transpose(im)
            assert upright is not None
            return keep_alpha(upright)


def open_image(path: str | Path, item_id: str) -> Image.Image:
    """Decode an image file fully into an RGB image (RGBA where it has transparency), EXIF
    orientation applied.

    Raises
    ------
    ItemError
        The file is missing, unreadable, not an image, truncated or corrupt.
    """
    p = Path(path)
    _refuse_truncated_loading(item_id, "files")
    try:
        return decode_upright(p)
    except FileNotFoundError:
        raise ItemError(item_id, f"file not found: {str(p)!r} ({nearby(p)})") from None
    except PermissionError:
        raise ItemError(item_id, f"permission denied reading {str(p)!r}") from None
    except IsADirectoryError:
        raise ItemError(item_id, f"{str(p)!r} is a folder, not an image file") from None
    except Image.UnidentifiedImageError:
        raise ItemError(
            item_id, f"{str(p)!r} is not a readable image (unknown or corrupt format)"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ItemError(item_id, f"{str(p)!r} is too large to decode safely ({e})") from None
    except ImageShapeError as e:
        raise ItemError(item_id, f"{str(p)!r}: {e}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        what = "truncated" if "truncated" in str(e).lower() else "corrupt"
        raise ItemError(item_id, f"{str(p)!r} is {what}: {type(e).__name__}: {e}") from None


def decode_image_bytes(data: bytes, item_id: str, where: str = "") -> Image.Image:
    """Decode an encoded image (PNG, JPEG... bytes) fully into an RGB image (RGBA where it has
    transparency), EXIF applied.

    Raises
    ------
    ItemError
        The bytes are not a readable, complete image.

    Examples
    --------
    >>> buf = io.BytesIO()
    >>> Image.new("L", (3, 2)).save(buf, format="PNG")
    >>> decode_image_bytes(buf.getvalue(), "x").mode
    'RGB'
    """
    what = f" ({where})" if where else ""
    _refuse_truncated_loading(item_id, "images")
    try:
        return decode_upright(io.BytesIO(data))
    except Image.UnidentifiedImageError:
        raise ItemError(
            item_id, f"{len(data)} bytes{what} are not a readable image (unknown or corrupt format)"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ItemError(item_id, f"image{what} is too large to decode safely ({e})") from None
    except ImageShapeError as e:
        raise ItemError(item_id, f"{e}{what}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        kind = "truncated" if "truncated" in str(e).lower() else "corrupt"
        raise ItemError(item_id, f"image bytes{what} are {kind}: {type(e).__name__}: {e}") from None


class ImageCell:
    """One cell of an image column: encoded bytes, a file path, or Hugging Face's
    ``{"bytes": ..., "path": ...}`` struct (bytes win when both are there).

    Parameters
    ----------
    value
        The raw cell.
    root
        The folder relative paths start from.
    item_id
        For error messages.

    Examples
    --------
    >>> ImageCell({"bytes": None, "path": "a.png"}, "/data", "row-0").path
    '/data/a.png'
    >>> ImageCell(b"...", "/data", "row-0").data
    b'...'
    """

    def __init__(self, value: Any, root: str, item_id: str) -> None:
        self.item_id = item_id
        self.data: bytes | None = None
        self.path: str | None = None
        self.name: str | None = None  # the path a struct cell names, even with bytes
        if isinstance(value, Mapping):
            raw, name = value.get("bytes"), value.get("path")
            self.name = str(name) if name else None
            if raw is not None:
                self.data = bytes(raw)
            elif name:
                self.path = os.path.join(root, os.path.expanduser(str(name)))
        elif isinstance(value, bytes | bytearray | memoryview):
            self.data = bytes(value)
        elif isinstance(value, str) and value.strip():
            self.path = os.path.join(root, os.path.expanduser(value))
        if self.data is None and self.path is None:
            raise ItemError(item_id, f"no image in its cell (got {_short(value)})")

    def load(self) -> Image.Image:
        """The decoded RGB image."""
        if self.data is not None:
            return decode_image_bytes(self.data, self.item_id, self.name or "")
        assert self.path is not None
        return open_image(self.path, self.item_id)

    def content_hash(self) -> bytes:
        """blake2b-128 of the encoded bytes: equal to the hash of a file holding them."""
        if self.data is not None:
            return content_hash(self.data)
        assert self.path is not None
        return file_hash(self.path, self.item_id)

    def reference(self) -> str:
        """The file the image is (or came from), or ``""`` for anonymous bytes."""
        return self.path or self.name or ""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def file_hash(path: str | Path, item_id: str) -> bytes:
    """blake2b-128 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.blake2b(digest_size=HASH_BYTES)
    try:
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    except FileNotFoundError:
        raise ItemError(item_id, f"file not found: {str(path)!r} ({nearby(path)})") from None
    except OSError as e:
        raise ItemError(item_id, f"cannot read {str(path)!r}: {e.strerror or e}") from None
    return h.digest()


def array_to_image(a: np.ndarray) -> Image.Image:
    """One image array ([H, W], [H, W, 1|3|4], uint8 or floats in [0, 1]) → PIL RGB."""
    if a.dtype != np.uint8:
        a = _scale_to_uint8(a)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(a)).convert("RGB")
    if a.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(a))
    return to_rgb(Image.fromarray(np.ascontiguousarray(a)))
