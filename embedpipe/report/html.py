"""Rendering the report page with jinja2; every user-provided string is HTML-escaped."""

from __future__ import annotations

from typing import Any

_ENV = None


def _env():  # -> jinja2.Environment
    global _ENV
    if _ENV is None:
        from jinja2 import Environment, PackageLoader, StrictUndefined

        _ENV = Environment(
            loader=PackageLoader("embedpipe.report", "templates"),
            autoescape=True,  # ids, texts, class and stage names are user data
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        _ENV.filters["num"] = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"
        _ENV.filters["pct"] = lambda v: "–" if v is None else f"{100 * v:.1f}%"
    return _ENV


def render_page(data: dict[str, Any], manifest: dict[str, Any], files: str) -> str:
    """The HTML of a report page.

    Parameters
    ----------
    data
        The report stage's ``report.json``.
    manifest
        The run's manifest (stage timings, cache hits, versions, git commit).
    files
        The folder (relative to the page) holding the PNG files.

    Examples
    --------
    >>> data = {"title": "<b>t</b>", "heads": [], "backbone": None, "evaluate": "ev", "n_test": 0,
    ...         "ranking_metric": "accuracy", "metrics": [], "best": None, "scores_png": "s.png",
    ...         "confusion": {"head": "h", "png": "c.png"}, "per_class": [], "projection": None,
    ...         "neighbours": None, "leaderboard": None}
    >>> m = {"pipeline": "p", "run_id": "r", "started": "now", "git": None, "stages": [],
    ...      "seconds": 1.0, "key_seconds": 0.1, "seed": 0, "versions": {}}
    >>> "<title>&lt;b&gt;t&lt;/b&gt;</title>" in render_page(data, m, "files")
    True
    """
    stages = manifest.get("stages", [])
    timing = {
        "total": sum(s.get("seconds", 0.0) for s in stages),
        "hits": sum(1 for s in stages if s.get("status") == "hit"),
        "n": len(stages),
    }
    return (
        _env().get_template("report.html.j2").render(r=data, m=manifest, files=files, timing=timing)
    )
