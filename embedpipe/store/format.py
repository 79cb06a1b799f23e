"""The on-disk layout of a feature store: names, schema version, small helpers.

Schema 2 (see ``docs/store.md``) adds, per row, ``position`` (the item's index in the source),
``content`` (what a person needs to recognise it) and optional ``columns/<name>``; Fletcher-32
checksums on every fixed-size row dataset; the ``precision`` and ``feature_dtype`` attributes;
and plain integer / string attributes only (``complete`` is 0/1, not an HDF5 enum).
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np

from ..errors import Arg

SCHEMA_VERSION = 2
FEATURES = "features"
IDS = "ids"
HASHES = "content_hash"
LABELS = "labels"
POSITIONS = "position"
CONTENT = "content"
COLUMNS = "columns"
ERR_IDS = "errors/ids"
ERR_REASONS = "errors/reasons"
#: Datasets with one entry per row (kept columns, ``columns/<name>``, come on top).
ROW_DATASETS = (FEATURES, IDS, HASHES, LABELS, POSITIONS, CONTENT)
#: Small fixed-size row datasets whose chunks carry HDF5's Fletcher-32 checksum.
CHECKSUMMED = (HASHES, LABELS, POSITIONS)
#: CRC-32 of each block of ``block_rows`` feature rows (their bytes as stored), kept beside
#: the features. Not HDF5's Fletcher-32 filter on ``features``: a filtered chunk is rewritten
#: and re-checksummed whole at every commit (measured: appends of 64 rows 1.2-1.7x slower, reads
#: 1.7-2x slower), while a running CRC costs one pass over bytes already in memory.
FEATURE_CRC = "checksums/features"
HASH_BYTES = 16
TARGET_CHUNK_BYTES = 1 << 20
STR_DTYPE = h5py.string_dtype("utf-8")
FEATURE_DTYPES = ("float32", "float16")
#: HDF5 format bounds for writing: SWMR needs the 1.10 format; a lower bound of 1.10 (not
#: "latest", which is the newest library's own format) keeps Debian's HDF5 1.10 tools (h5dump)
#: able to read the file, Fletcher-32 checksummed chunks included.
LIBVER = ("v110", "latest")


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


def column_path(name: str) -> str:
    """The dataset of a kept user column: ``columns/<name>``."""
    if not name or "/" in name:
        raise ValueError(f"kept column name {name!r} must be non-empty and contain no '/'")
    return f"{COLUMNS}/{name}"


def row_datasets(f: h5py.File) -> list[str]:
    """Names of every per-row dataset present in an open store (schema 1 or 2)."""
    names = [n for n in ROW_DATASETS if n in f]
    if COLUMNS in f:
        names += [column_path(k) for k in f[COLUMNS]]
    return names


def schema_version(f: h5py.File) -> int:
    return int(f.attrs.get("schema_version", 0))


def flag(value: Any) -> bool:
    """A 0/1 attribute (schema 2) or an HDF5 boolean enum (schema 1) as a bool."""
    return bool(np.asarray(value).item())


try:  # ISA-L's CRC-32: the same values as zlib.crc32, about 30x faster (see pyproject.toml)
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    from zlib import crc32 as _crc32


def crc32(data: np.ndarray, value: int = 0) -> int:
    """CRC-32 (zlib's polynomial) of an array's bytes as stored, continuing from ``value``.

    Examples
    --------
    >>> import zlib
    >>> x = np.arange(10, dtype=np.float32)
    >>> crc32(x) == zlib.crc32(x.tobytes()) == crc32(x[5:], crc32(x[:5]))
    True
    """
    return int(_crc32(np.ascontiguousarray(data).data, value))


def crc_blocks(
    features: np.ndarray, crc: int, filled: int, block_rows: int
) -> tuple[list[int], int, int]:
    """Feed rows into a running block CRC: returns the CRCs of blocks completed, the running
    CRC of the open block and how many rows it holds."""
    done: list[int] = []
    i, k = 0, len(features)
    while i < k:
        take = min(block_rows - filled, k - i)
        crc = crc32(features[i : i + take], crc)
        filled += take
        i += take
        if filled == block_rows:
            done.append(crc)
            crc, filled = 0, 0
    return done, crc, filled


def feature_crcs(ds: h5py.Dataset, n: int, block_rows: int) -> Iterator[tuple[int, int, int]]:
    """``(start, stop, crc)`` of each block of the first ``n`` rows of ``ds`` as stored."""
    step = block_rows * 16
    for s in range(0, n, step):
        x = ds[s : min(n, s + step)]
        for b in range(0, len(x), block_rows):
            yield (
                s + b,
                s + min(len(x), b + block_rows),
                crc32(x[b : b + block_rows]),
            )


def write_feature_crcs(f: h5py.File) -> None:
    """(Re)compute every block CRC of an open store's committed features."""
    n = int(f.attrs["n_committed"])
    ds = f[FEATURE_CRC]
    block = int(ds.attrs["block_rows"])
    crcs = [c for _, _, c in feature_crcs(f[FEATURES], n, block)]
    ds.resize(len(crcs), axis=0)
    if crcs:
        ds[:] = np.array(crcs, np.uint32)


def _precision_parts(label: str) -> tuple[str, str, str]:
    """``"bf16@openvino-2026.4.1"`` → ``("bf16", "openvino", "2026.4.1")``; no runtime: ``""``."""
    prec, _, rt = label.partition("@")
    name, _, version = rt.rpartition("-")
    return prec, name, version


def describe_precision(label: str) -> str:
    """A store's precision label in words: ``"fp32"`` → ``"precision 'fp32'"``,
    ``"bf16@openvino-2026.4.1"`` → ``"precision 'bf16' on runtime openvino 2026.4.1"``.

    Examples
    --------
    >>> describe_precision("bf16@openvino-2026.4.1")
    "precision 'bf16' on runtime openvino 2026.4.1"
    """
    prec, name, version = _precision_parts(label)
    return f"precision {prec!r} on runtime {name} {version}" if name else f"precision {prec!r}"


def match_precision(label: str) -> tuple[Arg, ...]:
    """The arguments that reproduce a precision label (for a :class:`~embedpipe.errors.Fix`).

    Examples
    --------
    >>> [a.python() for a in match_precision("fp32@onnxruntime-1.32.0")]
    ["precision='fp32'", "runtime='onnxruntime'"]
    """
    prec, name, _ = _precision_parts(label)
    return (Arg("precision", prec), *((Arg("runtime", name),) if name else ()))
