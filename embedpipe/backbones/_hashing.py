"""Content hashes that identify weights (files, folders of files, state dicts)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

_CHUNK = 1 << 20
# (resolved path, size, mtime_ns) -> hex digest: re-hashing a large file on every load is slow.
_FILE_CACHE: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (memoised on path, size and modification time)."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    digest = _FILE_CACHE.get(key)
    if digest is None:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        digest = h.hexdigest()
        _FILE_CACHE[key] = digest
    return digest


def sha256_files(paths: Iterable[str | os.PathLike[str]]) -> str:
    """Hex sha256 over several files' hashes, in the given order (e.g. weight shards)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def sha256_state_dict(state: Mapping[str, torch.Tensor]) -> str:
    """Hex sha256 of a state dict: names, dtypes, shapes and values, in sorted key order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
