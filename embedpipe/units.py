"""Formatting sizes for people: the one byte formatter of the CLI, plans and leaderboards."""

from __future__ import annotations


def format_bytes(n: float | None) -> str:
    """A byte count in binary units (1 KB = 1024 B), one decimal; ``None`` is ``"-"``.

    Examples
    --------
    >>> format_bytes(512), format_bytes(1536), format_bytes(3 << 30), format_bytes(None)
    ('512 B', '1.5 KB', '3.0 GB', '-')
    >>> format_bytes(5 << 40)
    '5.0 TB'
    """
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"
