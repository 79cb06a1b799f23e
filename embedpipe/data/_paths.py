"""Helpful messages for paths that do not exist: what is there, and the closest names."""

from __future__ import annotations

import difflib
import os
from pathlib import Path


def nearby(path: str | Path, limit: int = 5) -> str:
    """Describe the closest existing folder to ``path``: the closest names, then a sample."""
    p = Path(path)
    parent = p.parent
    while not parent.is_dir() and parent != parent.parent:
        parent = parent.parent
    try:
        names = sorted(e.name + ("/" if e.is_dir() else "") for e in os.scandir(parent))
    except OSError as e:
        return f"its folder {str(parent)!r} cannot be listed ({e.strerror})"
    if not names:
        return f"the folder {str(parent)!r} is empty"
    close = difflib.get_close_matches(p.name, [n.rstrip("/") for n in names], n=limit, cutoff=0.5)
    shown = ", ".join(names[:limit]) + (
        f", ... ({len(names)} entries)" if len(names) > limit else ""
    )
    msg = f"{str(parent)!r} holds: {shown}"
    if close:
        msg = f"closest names: {', '.join(close)}; " + msg
    return msg
