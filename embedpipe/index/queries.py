"""Raw queries (texts, images) → vectors through the index's own backbone."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, FingerprintMismatchError, ItemError


def load_query_encoder(
    backbone: dict[str, Any], fingerprint: str, device: str = "auto", precision: str = "fp32"
) -> Any:
    """Reload the backbone an index was built with and check it still makes the same features.

    Raises
    ------
    FingerprintMismatchError
        The reloaded backbone's fingerprint differs (its weights file changed, say).
    """
    from ..backbones import load_backbone

    encoder = load_backbone(backbone, device=device, precision=precision)
    if encoder.fingerprint != fingerprint:
        raise FingerprintMismatchError(
            f"query backbone {backbone.get('name')!r}",
            fingerprint,
            encoder.fingerprint,
            "The backbone reloaded from the index's provenance no longer produces the features "
            "the index holds (were its weights replaced?). Restore them, or re-encode the stores "
            "and rebuild the index.",
        )
    return encoder


def check_modality(encoder: Any, wanted: str, index_desc: str) -> None:
    """A text query needs a text backbone, an image query an image one."""
    have = getattr(encoder, "modality", None)
    if have != wanted:
        other = (
            "--query-image PATH (API: search_images)"
            if have == "image"
            else "--query TEXT (API: search_texts)"
        )
        raise ConfigError(
            f"cannot search {index_desc} with {'a text' if wanted == 'text' else 'an image'}: its "
            f"backbone encodes {have}s. Query it with {other} or by id (--query-id)."
        )


def decode_image(data: bytes, name: str = "upload") -> Any:
    """Image bytes → PIL RGB image; unreadable data raises :class:`ItemError` naming ``name``."""
    from PIL import Image, ImageOps

    from ..data.images import to_rgb

    if not data:
        raise ItemError(name, "empty image data")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                upright = ImageOps.exif_transpose(im) or im
                return to_rgb(upright)
    except Image.UnidentifiedImageError:
        raise ItemError(name, "not a readable image (unknown or corrupt format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ItemError(name, f"image too large to decode safely ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ItemError(name, f"corrupt or truncated image: {type(e).__name__}: {e}") from None


def load_images(images: Sequence[Any]) -> list[Any]:
    """Paths, bytes or PIL images → PIL RGB images."""
    from PIL import Image

    from ..data.images import open_image, to_rgb

    out = []
    for k, im in enumerate(images):
        if isinstance(im, str | Path):
            out.append(open_image(im, str(im)))
        elif isinstance(im, bytes | bytearray):
            out.append(decode_image(bytes(im), f"#{k}"))
        elif isinstance(im, Image.Image):
            out.append(to_rgb(im))
        else:
            raise ItemError(
                f"#{k}",
                f"a query image must be a path, bytes or a PIL image, not {type(im).__name__}",
            )
    return out


def check_texts(texts: Sequence[Any]) -> list[str]:
    """Non-empty strings only: an empty query is a clear error, not a meaningless vector."""
    if isinstance(texts, str):
        texts = [texts]
    out = []
    for k, t in enumerate(texts):
        if not isinstance(t, str):
            raise ItemError(f"#{k}", f"a text query must be a string, not {type(t).__name__}")
        if not t.strip():
            raise ItemError(f"#{k}", "empty text query; type some words to search for")
        out.append(t)
    return out


def encode_queries(encoder: Any, items: Sequence[Any]) -> np.ndarray:
    """Encode raw query items in memory (no store is written)."""
    from ..encoding import encode_items

    return encode_items(encoder, list(items), batch_size=64)
