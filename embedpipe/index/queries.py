"""Raw queries (texts, images) → vectors through the index's own backbone."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, FingerprintMismatchError, ItemError


def runtime_of_label(label: str) -> tuple[str, str]:
    """The runtime and precision that queries of stores with precision label ``label`` run at:
    the label's runtime where it names one (``"fp32@openvino-2026.4.1"``), else torch at fp32.

    Examples
    --------
    >>> runtime_of_label("bf16@openvino-2026.4.1"), runtime_of_label("bf16")
    (('openvino', 'bf16'), ('torch', 'fp32'))
    """
    prec, _, rest = label.split("+")[0].partition("@")
    if not rest:
        return "torch", "fp32"
    return rest.rsplit("-", 1)[0], prec


def load_query_encoder(
    backbone: dict[str, Any],
    fingerprint: str,
    device: str = "auto",
    precision: str = "fp32",
    runtime: str = "torch",
) -> Any:
    """Reload the backbone an index was built with and check it still makes the same features.
    ``runtime``: where the query forward runs (the stores' runtime, so queries equal rows).

    Raises
    ------
    FingerprintMismatchError
        The reloaded backbone's fingerprint differs (its weights file changed, say).
    """
    from ..backbones import load_backbone

    if runtime != "torch" and device == "auto":
        device = "cpu"  # runtimes other than torch run on the CPU
    encoder = load_backbone(backbone, device=device, precision=precision, runtime=runtime)
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
    from PIL import Image

    from ..data.images import ImageShapeError, decode_upright

    if not data:
        raise ItemError(name, "empty image data")
    try:
        return decode_upright(io.BytesIO(data))  # the backbone converts transparency
    except Image.UnidentifiedImageError:
        raise ItemError(name, "not a readable image (unknown or corrupt format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ItemError(name, f"image too large to decode safely ({e})") from None
    except ImageShapeError as e:
        raise ItemError(name, str(e)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ItemError(name, f"corrupt or truncated image: {type(e).__name__}: {e}") from None


def load_images(images: Sequence[Any], encoder: Any = None) -> list[Any]:
    """Paths, bytes or PIL images → PIL images as a source gives them (RGB, or RGBA with
    transparency: the backbone converts it its own library's way), decoded as ``encoder``'s
    stores decode them (:func:`~embedpipe.encoding.loader.decoding_for_encoder`)."""
    import contextlib

    from ..encoding.loader import decoding_for_encoder

    with decoding_for_encoder(encoder) if encoder is not None else contextlib.nullcontext():
        return _load_images(images)


def _load_images(images: Sequence[Any]) -> list[Any]:
    from PIL import Image

    from ..data.images import keep_alpha, open_image

    out = []
    for k, im in enumerate(images):
        if isinstance(im, str | Path):
            out.append(open_image(im, str(im)))
        elif isinstance(im, bytes | bytearray):
            out.append(decode_image(bytes(im), f"#{k}"))
        elif isinstance(im, Image.Image):
            out.append(keep_alpha(im))
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
