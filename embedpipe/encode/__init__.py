"""The extraction engine: data loader → frozen backbone → background HDF5 writer."""

from __future__ import annotations

from .engine import EncodeResult, encode, encode_items

__all__ = ["EncodeResult", "encode", "encode_items"]
