"""Stage keys: content hashes of what determines a stage's output.

A key hashes the stage's kind and kind version, its canonical parameters, its inputs' keys, its
datasets' content digests and its seed — never paths, file times or function bytecode. A
parameter naming a local file or folder (a weights file, a model folder) enters the key as the
content digest of that file or folder, so moving a project keeps its keys.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

KEY_BYTES = 16
KEY_SCHEME = "embedpipe-stage-key-v1"
_FILE_CHUNK = 1 << 20


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys, no whitespace, no NaN: equal values give equal text."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def stage_key(key_inputs: dict[str, Any]) -> str:
    """The hex key (32 characters) of a stage from its key inputs (see :func:`key_inputs`)."""
    blob = canonical_json({"scheme": KEY_SCHEME, **key_inputs}).encode("utf-8")
    return hashlib.blake2b(blob, digest_size=KEY_BYTES).hexdigest()


def key_inputs(
    *,
    kind: str,
    version: int,
    params: dict[str, Any],
    inputs: dict[str, list[str]],
    datasets: dict[str, str],
    seed: int,
    input_names: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Everything a stage key is made of, as one JSON-able mapping.

    ``inputs`` maps each role to the keys of its stages, ``datasets`` each dataset role to
    the dataset's content digest. ``input_names`` is given only for kinds that display their
    inputs' names (so renaming an input re-renders them).
    """
    out: dict[str, Any] = {
        "kind": kind,
        "version": version,
        "params": params,
        "inputs": inputs,
        "datasets": datasets,
        "seed": seed,
    }
    if input_names is not None:
        out["input_names"] = input_names
    return out


def file_digest(path: Path) -> str:
    """blake2b-128 of a file's bytes."""
    h = hashlib.blake2b(digest_size=KEY_BYTES)
    with open(path, "rb") as f:
        while chunk := f.read(_FILE_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def folder_digest(path: Path) -> str:
    """blake2b-128 over a folder's files: relative names and contents, in sorted order."""
    h = hashlib.blake2b(digest_size=KEY_BYTES)
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    for p in files:
        rel = p.relative_to(path).as_posix().encode("utf-8")
        h.update(len(rel).to_bytes(4, "little") + rel)
        h.update(bytes.fromhex(file_digest(p)))
    return h.hexdigest()


def split_scheme(value: str) -> tuple[str, str]:
    """``"hf-text:models/x"`` → ``("hf-text:", "models/x")``; a bare path has no scheme.

    A one-letter "scheme" is a Windows drive, not a scheme.
    """
    head, sep, tail = value.partition(":")
    if sep and len(head) > 1 and "/" not in head and "\\" not in head:
        return head + ":", tail
    return "", value


def local_path(value: str, base_dir: Path) -> Path | None:
    """The existing local file or folder a parameter value names, or ``None``.

    Only values that look like paths (holding a separator, or starting with ``.`` or ``~``)
    are considered, so registry names such as ``minilm`` are never taken for files.
    """
    _, rest = split_scheme(value)
    if not rest or not (os.sep in rest or "/" in rest or rest.startswith((".", "~"))):
        return None
    p = Path(rest).expanduser()
    if not p.is_absolute():
        p = base_dir / p
    return p if p.exists() else None


def resolve_path_param(value: str, base_dir: Path) -> str:
    """A path-like parameter made absolute (relative to the pipeline file), scheme kept."""
    p = local_path(value, base_dir)
    if p is None:
        return value
    scheme, _ = split_scheme(value)
    return scheme + str(p.resolve())


def content_param(value: str, base_dir: Path) -> str | dict[str, str]:
    """How a path-like parameter enters a key: the content digest of what it names."""
    p = local_path(value, base_dir)
    if p is None:
        return value
    scheme, _ = split_scheme(value)
    digest = folder_digest(p) if p.is_dir() else file_digest(p)
    return {"scheme": scheme, "content": digest, "type": "folder" if p.is_dir() else "file"}
