"""HDF5 feature stores: crash-safe appends, provenance, readers."""

from __future__ import annotations

from .reader import Batch, FeatureStore
from .writer import StoreWriter

__all__ = ["Batch", "FeatureStore", "StoreWriter"]
