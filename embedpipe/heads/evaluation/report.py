"""The evaluation report model: one :class:`HeadResult` per head, an :class:`EvaluationReport`
around them, its JSON form (``schema: "embedpipe.evaluation/1"``, see
:mod:`embedpipe.heads.evaluation`) and its plain-text table.

Examples
--------
>>> r = HeadResult("h", {"name": "h"}, {"accuracy": stat([0.9])}, None, stat([0.01]), [], [])
>>> print(EvaluationReport("holdout", {}, {}, [r], metrics=["accuracy"]).table())
head  accuracy  fit s  predict s
----  --------  -----  ---------
h       0.9000      -      0.010
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConfigError
from .metrics import METRICS

SCHEMA = "embedpipe.evaluation/1"
_HEADERS = {
    "accuracy": "accuracy",
    "balanced_accuracy": "bal. acc",
    "macro_f1": "macro F1",
    "top_k_accuracy": "top-{k}",
}
_FIELDS = (
    "name",
    "head",
    "scores",
    "fit_seconds",
    "predict_seconds",
    "per_class",
    "confusion_matrix",
)
#: Optional per-head figures, written only when present (holdout evaluations fill them).
_OPTIONAL = ("intervals", "errors", "training_curve")


def stat(values: Sequence[float | None]) -> dict[str, Any] | None:
    """``{"mean", "std", "folds"}`` of per-fold values; ``None`` if any is missing.

    Examples
    --------
    >>> stat([0.5, 0.7])["mean"]
    0.6
    """
    if not values or any(v is None for v in values):
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std()), "folds": [float(v) for v in arr]}


def _library_versions() -> dict[str, str]:
    from ...store.format import library_versions

    return library_versions()


@dataclass
class HeadResult:
    """The evaluation of one head (one entry of ``EvaluationReport.results``).

    ``intervals`` (bootstrap 95% intervals ``{"accuracy": [lo, hi], "macro_f1": [lo, hi]}``),
    ``errors`` (misclassified examples, most confident first: ``{"id", "input", "true",
    "predicted", "score"}``) and ``training_curve`` (one dict per epoch of a fine-tuning run)
    are ``None`` where an evaluation does not compute them.
    """

    name: str
    head: dict[str, Any]
    scores: dict[str, dict[str, Any] | None]
    fit_seconds: dict[str, Any] | None
    predict_seconds: dict[str, Any] | None
    per_class: list[dict[str, Any]]
    confusion_matrix: list[list[int]]
    intervals: dict[str, list[float]] | None = None
    errors: list[dict[str, Any]] | None = None
    training_curve: list[dict[str, Any]] | None = None
    #: The majority-class baseline of the data this head was scored on, for whoever gathers
    #: results into a report (not part of the result's JSON: the report writes one).
    baseline: HeadResult | None = field(default=None, repr=False, compare=False)

    def mean(self, metric: str) -> float | None:
        """The mean of ``metric`` over folds (``None``: not applicable)."""
        s = self.scores.get(metric)
        return None if s is None else float(s["mean"])

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in _FIELDS}
        d.update({k: getattr(self, k) for k in _OPTIONAL if getattr(self, k) is not None})
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HeadResult:
        values: dict[str, Any] = {k: d[k] for k in _FIELDS}
        values.update({k: d.get(k) for k in _OPTIONAL})
        return cls(**values)


@dataclass
class EvaluationReport:
    """Scores of one or more heads on the same features (see the module doc for the JSON).

    ``baseline`` is the majority-class baseline (a :class:`HeadResult` that always predicts
    the most frequent training class): a head is only worth its score's distance above it.
    """

    kind: str
    data: dict[str, Any]
    protocol: dict[str, Any]
    results: list[HeadResult]
    ranking_metric: str = "accuracy"
    metrics: list[str] = field(default_factory=lambda: list(METRICS))
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    versions: dict[str, str] = field(default_factory=_library_versions)
    baseline: HeadResult | None = None

    def __post_init__(self) -> None:
        self.results.sort(key=lambda r: -(r.mean(self.ranking_metric) or -np.inf))

    @property
    def best(self) -> HeadResult:
        """The head with the highest ``ranking_metric``."""
        return self.results[0]

    def result(self, name: str) -> HeadResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(f"no head {name!r} in this report; heads: {[r.name for r in self.results]}")

    def to_dict(self) -> dict[str, Any]:
        d = {
            "schema": SCHEMA,
            "kind": self.kind,
            "created": self.created,
            "versions": self.versions,
            "data": self.data,
            "protocol": self.protocol,
            "metrics": self.metrics,
            "ranking_metric": self.ranking_metric,
            "best": self.best.name if self.results else None,
            "results": [r.to_dict() for r in self.results],
        }
        if self.baseline is not None:
            d["baseline"] = self.baseline.to_dict()
        return d

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, default=str)
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvaluationReport:
        if d.get("schema") != SCHEMA:
            raise ConfigError(
                f"not an embedpipe evaluation report (schema {d.get('schema')!r}, expected {SCHEMA!r})."
            )
        return cls(
            kind=d["kind"],
            data=d["data"],
            protocol=d["protocol"],
            results=[HeadResult.from_dict(r) for r in d["results"]],
            ranking_metric=d["ranking_metric"],
            metrics=list(d["metrics"]),
            created=d["created"],
            versions=d["versions"],
            baseline=HeadResult.from_dict(d["baseline"]) if d.get("baseline") else None,
        )

    @classmethod
    def from_json(cls, path: str | Path) -> EvaluationReport:
        """Read a report written by :meth:`to_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def table(self) -> str:
        """A plain-text comparison table, best head first (mean ± std over folds, or the
        bootstrap 95% interval of a holdout score), the majority-class baseline last."""
        k = self.protocol.get("top_k", 5)
        metrics = [m for m in self.metrics if m in _HEADERS]
        cols = ["head", *(_HEADERS[m].format(k=k) for m in metrics), "fit s", "predict s"]
        rows = []
        shown = [*self.results, *([self.baseline] if self.baseline is not None else [])]
        for r in shown:
            cells = [r.name if r is not self.baseline else f"{r.name} (baseline)"]
            for m in metrics:
                s = r.scores.get(m)
                ci = (r.intervals or {}).get(m)
                if s is None:
                    cells.append("-")
                elif len(s["folds"]) > 1:
                    cells.append(f"{s['mean']:.4f} ± {s['std']:.4f}")
                elif ci:
                    cells.append(f"{s['mean']:.4f} [{ci[0]:.3f}, {ci[1]:.3f}]")
                else:
                    cells.append(f"{s['mean']:.4f}")
            for t in (r.fit_seconds, r.predict_seconds):
                cells.append("-" if t is None else f"{t['mean']:.3f}")
            rows.append(cells)
        widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows, strict=True)]

        def line(cells: list[str]) -> str:
            return "  ".join(
                str(c).ljust(w) if i == 0 else str(c).rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )

        out = [line(cols), "  ".join("-" * w for w in widths), *(line(c) for c in rows)]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.table()
