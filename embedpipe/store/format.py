"""The on-disk layout of a feature store: names, schema version, small helpers."""

from __future__ import annotations

import json
import platform
from typing import Any

import h5py
import numpy as np

SCHEMA_VERSION = 1
FEATURES = "features"
IDS = "ids"
HASHES = "content_hash"
LABELS = "labels"
ERR_IDS = "errors/ids"
ERR_REASONS = "errors/reasons"
HASH_BYTES = 16
TARGET_CHUNK_BYTES = 1 << 20
STR_DTYPE = h5py.string_dtype("utf-8")
FEATURE_DTYPES = ("float32", "float16")


def chunk_rows(dim: int, dtype: str) -> int:
    """Rows per chunk so a chunk is about 1 MiB (appends and row slices stay cheap)."""
    itemsize = np.dtype(dtype).itemsize
    return int(max(16, min(65536, TARGET_CHUNK_BYTES // max(1, dim * itemsize))))


def library_versions() -> dict[str, str]:
    """Versions of what produced the features, written into every store."""
    import importlib.metadata as md

    out = {
        "python": platform.python_version(),
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "numpy": np.__version__,
    }
    for name in ("embedpipe", "torch", "torchvision", "transformers"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def loads(text: Any) -> Any:
    if isinstance(text, bytes):
        text = text.decode()
    return json.loads(text)
