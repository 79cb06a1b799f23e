"""The curate page: what ``embedpipe curate`` found, as one HTML table (user text escaped)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

#: Table rows shown on the page (the Parquet / CSV files hold all of them).
MAX_ROWS = 2000


def render_curate_page(
    summary: dict[str, Any], records: list[dict[str, Any]], *, map_href: str | None = None
) -> str:
    """The HTML of a curate page from a result's ``summary`` and table records.

    Examples
    --------
    >>> s = {"rows": 2, "stores": ["a.h5"], "splits": ["a"], "graph": "exact", "k": 1,
    ...      "near_dup_threshold": 0.9, "near_dup_threshold_how": "set: 0.9",
    ...      "outliers_how": "-", "label_issues_how": "off", "counts": {"leak": 0},
    ...      "seconds": {}}
    >>> rec = {"split": "a", "id": "<x>", "content": "t", "issue": "outlier", "score": 0.5,
    ...        "related": [], "label": None, "suggested_label": None, "group": -1}
    >>> "&lt;x&gt;" in render_curate_page(s, [rec])
    True
    """
    from .html import _env as env

    return (
        env()
        .get_template("curate.html.j2")
        .render(s=summary, rows=records[:MAX_ROWS], n_rows=len(records), map_href=map_href)
    )


def write_curate_page(result: Any, path: str | Path, *, map_href: str | None = "map.html") -> Path:
    """Write the page of a :class:`embedpipe.curate.CurateResult` to ``path`` (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = result.table.to_dict(orient="records")
    html = render_curate_page(result.summary, records, map_href=map_href)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        Path(tmp).write_text(html, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
