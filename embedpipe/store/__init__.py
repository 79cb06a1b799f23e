"""HDF5 feature stores: crash-safe appends by one locked writer, provenance, readers in source
order, checksums, export (schema 2; see ``docs/store.md``)."""

from __future__ import annotations

from .arrays import write_store
from .compat import check_compatible
from .export import export, to_arrow, to_pandas
from .lock import StoreLock, lock_holder
from .reader import Batch, FeatureStore
from .writer import StoreWriter

__all__ = [
    "Batch",
    "FeatureStore",
    "StoreLock",
    "StoreWriter",
    "check_compatible",
    "export",
    "lock_holder",
    "to_arrow",
    "to_pandas",
    "write_store",
]
