"""The run manifest: what a run did, with what, and from which commit of the pipeline file."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MANIFEST_SCHEMA = 1
_PACKAGES = (
    "embedpipe",
    "numpy",
    "torch",
    "torchvision",
    "transformers",
    "scikit-learn",
    "faiss-cpu",
    "h5py",
    "pydantic",
    "matplotlib",
)


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that shape results (read from metadata, no import)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def git_info(file: Path) -> dict[str, Any] | None:
    """The commit of the repository holding ``file``, and whether the file differs from it.

    ``None`` when the file is not in a git work tree (or git is not installed). Read-only:
    runs ``git rev-parse``, ``git log`` and ``git status`` only.
    """
    file = file.resolve()
    cwd = file.parent
    head = _git(["rev-parse", "HEAD"], cwd)
    if not head:
        return None
    tracked = _git(["ls-files", "--error-unmatch", file.name], cwd) is not None
    last = _git(["log", "-n", "1", "--format=%H", "--", file.name], cwd) if tracked else None
    status = _git(["status", "--porcelain", "--", file.name], cwd)
    return {
        "head": head,
        "file_commit": last or None,
        "tracked": tracked,
        "modified": bool(status),
    }


def file_digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    import uuid

    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
