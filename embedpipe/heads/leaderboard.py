"""A backbone leaderboard: for each feature extractor, its best head and what it costs.

Each *candidate* is one head's predictions on one feature extractor's test items (a backbone,
a layer, a pooling...). :func:`leaderboard` keeps the best head of each extractor and reports
accuracy and macro-F1 with percentile-bootstrap 95% intervals (test items resampled with
replacement, the same resamples for every figure), the feature dimension, encode items/s, store
size and the head's fit time; :func:`pareto_front` marks the extractors no other one beats on
both accuracy and encode cost. The ``compare`` pipeline stage and ``embedpipe evaluate`` with
several ``--store`` print the same table (:func:`format_table`).

Examples
--------
>>> y = np.array([0, 0, 1, 1, 1, 0, 1, 0])
>>> cands = [
...     Candidate("small", "logreg", y, np.array([0, 0, 1, 1, 1, 0, 1, 1]), dim=8, items_per_s=900.0),
...     Candidate("small", "knn", y, np.array([0, 1, 1, 0, 1, 0, 1, 1]), dim=8, items_per_s=900.0),
...     Candidate("big", "logreg", y, y.copy(), dim=64, items_per_s=100.0),
... ]
>>> rows = leaderboard(cands, n_boot=200)
>>> [(r.group, r.head, r.accuracy, r.pareto) for r in rows]
[('big', 'logreg', 1.0, True), ('small', 'logreg', 0.875, True)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..units import format_bytes

LEVEL = 0.95


@dataclass
class Candidate:
    """One head's test predictions on one feature extractor (``group``), and its costs."""

    group: str
    head: str
    y_true: np.ndarray
    y_pred: np.ndarray
    dim: int | None = None
    items_per_s: float | None = None
    store_bytes: int | None = None
    fit_seconds: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class LeaderRow:
    """The best head of one feature extractor."""

    group: str
    head: str
    accuracy: float
    accuracy_ci: tuple[float, float]
    macro_f1: float
    macro_f1_ci: tuple[float, float]
    n_test: int
    dim: int | None = None
    items_per_s: float | None = None
    store_bytes: int | None = None
    fit_seconds: float | None = None
    heads_tried: int = 1
    pareto: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds_per_item(self) -> float | None:
        """Encode cost: seconds per item (``1 / items_per_s``)."""
        return 1.0 / self.items_per_s if self.items_per_s else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["accuracy_ci"] = list(self.accuracy_ci)
        d["macro_f1_ci"] = list(self.macro_f1_ci)
        return d


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Macro-averaged F1 over the classes present in ``y_true`` or ``y_pred`` (scikit-learn's).

    Examples
    --------
    >>> round(macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])), 4)
    0.7333
    """
    from sklearn.metrics import f1_score

    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def bootstrap_intervals(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, tuple[float, float]]:
    """Percentile-bootstrap intervals of accuracy and macro-F1 (paired resamples of the items).

    Vectorised: each resample is a row of item counts, so 1000 resamples of 1000 items take
    milliseconds.

    Examples
    --------
    >>> y = np.arange(200) % 2
    >>> ci = bootstrap_intervals(y, y)  # a perfect head: no spread
    >>> ci["accuracy"], ci["macro_f1"]
    ((1.0, 1.0), (1.0, 1.0))
    """
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    n = len(y_true)
    if n == 0:
        raise ConfigError("no test items to score (the test store holds no labelled rows).")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n), np.float64)
    np.add.at(counts, (np.repeat(np.arange(n_boot), n), idx.ravel()), 1.0)
    k = int(max(y_true.max(), y_pred.max())) + 1
    t = np.eye(k)[y_true]  # (n, k) one-hot
    p = np.eye(k)[y_pred]
    correct = (y_true == y_pred).astype(np.float64)
    acc = counts @ correct / n
    tp = counts @ (t * p)
    sup = counts @ t + counts @ p
    present = sup > 0
    f1 = np.divide(2 * tp, sup, out=np.zeros_like(tp), where=present)
    mf1 = f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1)
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2

    def q(v: np.ndarray) -> tuple[float, float]:
        a, b = np.quantile(v, [lo, hi])
        return (round(float(a), 6), round(float(b), 6))

    return {"accuracy": q(acc), "macro_f1": q(mf1)}


def pareto_front(costs: Sequence[float | None], scores: Sequence[float]) -> list[bool]:
    """Which points no other point beats on both figures (lower cost, higher score).

    A point without a cost is never on the front.

    Examples
    --------
    >>> pareto_front([1.0, 2.0, 3.0, 2.5], [0.8, 0.9, 0.85, 0.95])
    [True, True, False, True]
    """
    out = []
    for i, (c, s) in enumerate(zip(costs, scores, strict=True)):
        if c is None:
            out.append(False)
            continue
        beaten = any(
            j != i and cj is not None and cj <= c and sj >= s and (cj < c or sj > s)
            for j, (cj, sj) in enumerate(zip(costs, scores, strict=True))
        )
        out.append(not beaten)
    return out


def leaderboard(
    candidates: Sequence[Candidate],
    metric: str = "accuracy",
    n_boot: int = 1000,
    seed: int = 0,
) -> list[LeaderRow]:
    """The best head of each group (by ``metric``: ``accuracy`` or ``macro_f1``), best first.

    Ties keep the first candidate given. Rows on the accuracy / encode-cost Pareto front have
    ``pareto=True``.
    """
    if metric not in ("accuracy", "macro_f1"):
        raise ConfigError(f"leaderboard metric {metric!r}: use accuracy or macro_f1.")
    if not candidates:
        raise ConfigError("a leaderboard needs at least one head's predictions.")
    best: dict[str, tuple[float, float, float, Candidate]] = {}
    tried: dict[str, int] = {}
    for c in candidates:
        yt, yp = np.asarray(c.y_true), np.asarray(c.y_pred)
        if len(yt) != len(yp):
            raise ConfigError(
                f"head {c.head!r} of {c.group!r}: {len(yp)} predictions, {len(yt)} labels."
            )
        acc = float((yt == yp).mean()) if len(yt) else 0.0
        f1 = macro_f1(yt, yp) if len(yt) else 0.0
        value = acc if metric == "accuracy" else f1
        tried[c.group] = tried.get(c.group, 0) + 1
        if c.group not in best or value > best[c.group][0]:
            best[c.group] = (value, acc, f1, c)
    rows = []
    for group, (_, acc, f1, c) in best.items():
        ci = bootstrap_intervals(c.y_true, c.y_pred, n_boot=n_boot, seed=seed)
        rows.append(
            LeaderRow(
                group=group,
                head=c.head,
                accuracy=round(acc, 6),
                accuracy_ci=ci["accuracy"],
                macro_f1=round(f1, 6),
                macro_f1_ci=ci["macro_f1"],
                n_test=len(c.y_true),
                dim=c.dim,
                items_per_s=c.items_per_s,
                store_bytes=c.store_bytes,
                fit_seconds=c.fit_seconds,
                heads_tried=tried[group],
                info=dict(c.info),
            )
        )
    rows.sort(key=lambda r: -(r.accuracy if metric == "accuracy" else r.macro_f1))
    front = pareto_front([r.seconds_per_item for r in rows], [r.accuracy for r in rows])
    for r, on in zip(rows, front, strict=True):
        r.pareto = on
    return rows


def format_table(rows: Sequence[LeaderRow]) -> str:
    """The leaderboard as a Markdown table (``*`` marks the Pareto front).

    Examples
    --------
    >>> y = np.array([0, 1, 0, 1])
    >>> print(format_table(leaderboard([Candidate("b", "logreg", y, y, dim=4)], n_boot=10)))
    | features | best head | accuracy [95% CI] | macro-F1 [95% CI] | dim | encode items/s | store | fit s |
    |---|---|---|---|---|---|---|---|
    | b | logreg | 1.000 [1.000, 1.000] | 1.000 [1.000, 1.000] | 4 | - | - | - |
    """

    def num(v: float | None, fmt: str) -> str:
        return "-" if v is None else format(v, fmt)

    lines = [
        "| features | best head | accuracy [95% CI] | macro-F1 [95% CI] | dim | encode items/s "
        "| store | fit s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.group}{' *' if r.pareto else ''} | {r.head} "
            f"| {r.accuracy:.3f} [{r.accuracy_ci[0]:.3f}, {r.accuracy_ci[1]:.3f}] "
            f"| {r.macro_f1:.3f} [{r.macro_f1_ci[0]:.3f}, {r.macro_f1_ci[1]:.3f}] "
            f"| {num(r.dim, 'd')} | {num(r.items_per_s, '.1f')} | {format_bytes(r.store_bytes)} "
            f"| {num(r.fit_seconds, '.3f')} |"
        )
    return "\n".join(lines)


def store_candidates(
    stores: Sequence[str | Path],
    heads: Sequence[Any],
    *,
    cv: int = 5,
    seed: int = 0,
) -> list[Candidate]:
    """Cross-validated predictions of each head on each store (one store per backbone).

    Every labelled row is predicted once, by the fold that did not train on it, so the
    leaderboard's intervals are over all rows. The stores must hold the same items (one
    dataset encoded by several backbones).

    Parameters
    ----------
    stores
        Feature stores of one dataset.
    heads
        :class:`~embedpipe.heads.spec.HeadSpec` objects, or mappings of its fields.
    """
    import time

    from sklearn.model_selection import StratifiedKFold

    from ..store import FeatureStore
    from .spec import HeadSpec

    specs = [h if isinstance(h, HeadSpec) else HeadSpec(**dict(h)) for h in heads]
    out: list[Candidate] = []
    ref_ids: list[str] | None = None
    groups: set[str] = set()
    for path in stores:
        path = Path(path)
        with FeatureStore(path) as fs:
            labels = np.asarray(fs.labels)
            rows = np.flatnonzero(labels >= 0)
            ids = [str(i) for i in np.asarray(fs.ids)[rows]]
            x = fs.read(rows)
            y = labels[rows]
            prov = fs.provenance
            bb = fs.backbone or {}
            name = " ".join(
                [str(bb.get("name") or path.stem)]
                + [f"{k}={bb[k]}" for k in ("layer", "pooling") if bb.get(k) is not None]
            )
            extra = prov.get("extra") or {}
        if ref_ids is None:
            ref_ids = sorted(ids)
        elif sorted(ids) != ref_ids:
            raise ConfigError(
                f"store {str(path)!r} holds other items than {str(stores[0])!r}; compare stores "
                "of one dataset (the same labelled items)."
            )
        group = name if name not in groups else f"{name} ({path})"
        groups.add(group)
        folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed)
        for spec in specs:
            pred = np.empty_like(y)
            fit = 0.0
            for train, test in folds.split(x, y):
                model = spec.build()
                t0 = time.perf_counter()
                model.fit(x[train], y[train])
                fit += time.perf_counter() - t0
                pred[test] = model.predict(x[test])
            out.append(
                Candidate(
                    group=group,
                    head=spec.label,
                    y_true=y,
                    y_pred=pred,
                    dim=int(x.shape[1]),
                    items_per_s=extra.get("items_per_s"),
                    store_bytes=path.stat().st_size,
                    fit_seconds=round(fit / cv, 4),
                )
            )
    return out
