"""Helpers shared by the CLI modules."""

from __future__ import annotations

from typing import Any


def source_kwargs(
    text_column: str | None,
    label_column: str | None,
    path_column: str | None,
    id_column: str | None,
) -> dict[str, Any]:
    """The table-column options of ``open_source`` that were given on the command line."""
    kw = {
        "text_column": text_column,
        "label_column": label_column,
        "path_column": path_column,
        "id_column": id_column,
    }
    return {k: v for k, v in kw.items() if v is not None}
