"""How an image with transparency becomes the RGB image a model sees: each library's own way.

Sources hand images over with their alpha channel (RGBA); each backbone kind converts them the
way its library does, and records the choice in its spec (so it is part of the fingerprint):

- ``"convert"``: PIL's ``img.convert("RGB")`` — the alpha channel dropped, the colour under it
  kept. torchvision's and timm's documented pipelines do this (``Image.open(p).convert("RGB")``).
- ``"white"``: composited over white — transformers' ``convert_to_rgb`` (CLIP and the other
  image processors that convert), and every embedpipe store made before this choice existed.

Examples
--------
>>> from PIL import Image
>>> img = Image.new("RGBA", (1, 1), (255, 0, 0, 0))  # fully transparent red
>>> as_rgb(img, "convert").getpixel((0, 0)), as_rgb(img, "white").getpixel((0, 0))
((255, 0, 0), (255, 255, 255))
"""

from __future__ import annotations

from typing import Any

from embedpipe.errors import ConfigError

ALPHA_MODES: tuple[str, ...] = ("convert", "white")
_WHITE = (255, 255, 255, 255)


def check_alpha(alpha: Any) -> str:
    """``alpha`` if it is one of :data:`ALPHA_MODES`, else a one-line error."""
    if alpha not in ALPHA_MODES:
        raise ConfigError(
            f"alpha={alpha!r}; use 'convert' (drop transparency, as torchvision / timm) or "
            "'white' (composite over white, as transformers)"
        )
    return str(alpha)


def as_rgb(img: Any, alpha: str) -> Any:
    """``img`` (a PIL image, any mode) as RGB, transparency handled as ``alpha`` says."""
    if img.mode == "RGB":
        return img
    if alpha == "white" and (
        img.mode in ("RGBA", "LA", "PA", "RGBa", "La")
        or (img.mode == "P" and "transparency" in img.info)
    ):
        from PIL import Image

        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    return img.convert("RGB")
