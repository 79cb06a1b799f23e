"""Reports: metrics tables, plots (matplotlib Agg), a 2-D projection, neighbour examples, HTML.

A plain library below :mod:`embedpipe.pipeline` (it imports nothing of it): the ``report``
pipeline stage is :mod:`embedpipe.pipeline.stages.report`, which uses the pieces below.
"""

from __future__ import annotations

from .html import render_page
from .neighbours import cosine_neighbours, pick_queries
from .plots import confusion_png, projection_png, scores_png, thumbnail_png
from .projection import pca_2d, sample_rows

__all__ = [
    "confusion_png",
    "cosine_neighbours",
    "pca_2d",
    "pick_queries",
    "projection_png",
    "render_page",
    "sample_rows",
    "scores_png",
    "thumbnail_png",
]
