"""A fitted head bound to the backbone whose features it expects: train, save, load, predict.

Heads are saved in a format that loads without running code (:mod:`embedpipe.heads.persist`:
skops with an allow-list of types); older pickle (joblib) heads load only with ``trusted=True``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from ..errors import ConfigError, FingerprintMismatchError
from ..store import FeatureStore
from ..store.format import library_versions
from ._stores import StoreLike, check_neighbors, class_names, load_xy, opened, require_classes
from .knn import FaissKNNClassifier
from .spec import HeadSpec
from .torch_head import TorchHeadClassifier

FORMAT = "embedpipe-head"
#: 2: the safe (skops) format; 1: joblib pickles (loaded with ``trusted=True`` only).
FORMAT_VERSION = 2


@dataclass
class Predictions:
    """Predictions for a set of rows or items.

    ``labels`` are class indices (into ``classes``), ``scores`` the probability (or decision
    score) of the predicted class, ``proba`` all class probabilities when the head has them.
    ``inputs`` are what a person needs to recognise each item (its text, or an image's path),
    ``true`` the true class index where known (``-1``: unknown).

    Examples
    --------
    >>> p = Predictions(["a", "b"], np.array([1, 0]), ["neg", "pos"], np.array([0.9, 0.6]),
    ...                 inputs=["great film", "dull"], true=np.array([1, 1]))
    >>> p.to_records()[1]
    {'id': 'b', 'input': 'dull', 'true_class': 'pos', 'class_index': 0, 'class': 'neg', 'score': 0.6}
    """

    ids: list[str]
    labels: np.ndarray
    classes: list[str]
    scores: np.ndarray | None = None
    proba: np.ndarray | None = None
    inputs: list[str] | None = None
    true: np.ndarray | None = None

    @property
    def names(self) -> list[str]:
        return [self.classes[i] for i in self.labels.tolist()]

    def columns(self) -> list[str]:
        """The columns of :meth:`to_records` / :meth:`write`, in order."""
        return [
            "id",
            *(["input"] if self.inputs is not None else []),
            *(["true_class"] if self.true is not None else []),
            "class_index",
            "class",
            *(["score"] if self.scores is not None else []),
        ]

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per item: id, input and true class (when known), class index, class (its
        name), score."""
        out = []
        for k, (i, lab) in enumerate(zip(self.ids, self.labels.tolist(), strict=True)):
            rec: dict[str, Any] = {"id": i}
            if self.inputs is not None:
                rec["input"] = self.inputs[k]
            if self.true is not None:
                t = int(self.true[k])
                rec["true_class"] = self.classes[t] if 0 <= t < len(self.classes) else None
            rec["class_index"] = int(lab)
            rec["class"] = self.classes[lab]
            if self.scores is not None:
                rec["score"] = float(self.scores[k])
            out.append(rec)
        return out

    def write(self, path: str | Path) -> Path:
        """Write :meth:`to_records` rows as ``.csv``, ``.jsonl`` or ``.parquet``."""
        import pandas as pd

        path = Path(path)
        frame = pd.DataFrame.from_records(self.to_records(), columns=self.columns())
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".csv":
            frame.to_csv(path, index=False)
        elif path.suffix == ".jsonl":
            frame.to_json(path, orient="records", lines=True)
        elif path.suffix == ".parquet":
            frame.to_parquet(path, index=False)
        else:
            raise ConfigError(
                f"cannot write predictions to {str(path)!r}: use a .csv, .jsonl or .parquet file."
            )
        return path


def _scores(estimator: BaseEstimator, X: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(probabilities, decision scores) of a fitted estimator, whichever it has."""
    if hasattr(estimator, "predict_proba"):
        try:
            return estimator.predict_proba(X), None
        except AttributeError:  # e.g. SGDClassifier with hinge loss
            pass
    if hasattr(estimator, "decision_function"):
        return None, estimator.decision_function(X)
    return None, None


@dataclass
class TrainedHead:
    """A fitted head plus the provenance of the features it was trained on.

    It refuses features of another backbone: :meth:`check_fingerprint` raises
    :class:`~embedpipe.errors.FingerprintMismatchError`.

    Attributes
    ----------
    estimator
        The fitted scikit-learn estimator (a Pipeline for registry heads); its ``classes_``
        are class indices of the training store.
    spec
        The :class:`HeadSpec` as a dict.
    fingerprint, backbone
        The backbone fingerprint and spec of the training features.
    classes
        Class names (index ``i`` is label ``i``).
    n_features
        Feature dimension.
    trained_on
        ``{"path", "dataset_digest", "n_rows"}`` of the training store.
    """

    estimator: BaseEstimator
    spec: dict[str, Any]
    fingerprint: str
    backbone: dict[str, Any]
    classes: list[str]
    n_features: int
    trained_on: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds")
    )
    versions: dict[str, str] = field(default_factory=library_versions)

    # ---- provenance ---------------------------------------------------------------------
    def check_fingerprint(self, found: str, what: str = "features") -> None:
        """Raise :class:`FingerprintMismatchError` unless ``found`` is the training fingerprint."""
        if found != self.fingerprint:
            raise FingerprintMismatchError(
                what,
                self.fingerprint,
                found,
                f"This head was trained on features of backbone {self.backbone.get('name')!r} "
                f"({self.backbone.get('kind')}, layer={self.backbone.get('layer')}, "
                f"pooling={self.backbone.get('pooling')}); encode the data with that backbone, "
                "or train a head on this store's features.",
            )

    def check_store(self, fs: FeatureStore) -> None:
        """Refuse a store made by another backbone."""
        self.check_fingerprint(fs.fingerprint, f"features from {str(fs.path)!r}")

    # ---- prediction ---------------------------------------------------------------------
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class indices of feature rows (no provenance check: use :meth:`predict_store`)."""
        return np.asarray(self.estimator.predict(X), dtype=np.int64)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Probabilities, columns for ``estimator.classes_`` (the class indices seen in training)."""
        return self.estimator.predict_proba(X)

    def predictions(self, X: np.ndarray, ids: Sequence[str]) -> Predictions:
        """:class:`Predictions` of feature rows, with scores when the head has them."""
        proba, decision = _scores(self.estimator, X)
        final = self.estimator[-1] if hasattr(self.estimator, "steps") else self.estimator
        if proba is not None and isinstance(final, (FaissKNNClassifier, TorchHeadClassifier)):
            # their predict is the argmax of predict_proba: do not search / run the net twice
            labels = np.asarray(final.classes_, dtype=np.int64)[proba.argmax(axis=1)]
        else:
            labels = self.predict(X)
        scores = None
        if proba is not None:
            scores = proba.max(axis=1)
        elif decision is not None:
            scores = decision if decision.ndim == 1 else decision.max(axis=1)
        return Predictions(list(map(str, ids)), labels, self.classes, scores, proba)

    def predict_store(
        self, store: StoreLike, batch_size: int = 65536, *, with_content: bool = False
    ) -> Predictions:
        """Predict every row of a store (read in batches), after checking its fingerprint.

        With ``with_content``, the predictions also carry each row's input (the text or image
        path the store recorded, else its id) and its true class where the store has labels.
        """
        with opened(store) as fs:
            self.check_store(fs)
            parts = []
            for start in range(0, len(fs), batch_size):
                stop = min(len(fs), start + batch_size)
                parts.append(
                    self.predictions(fs.read(slice(start, stop)), fs.ids[start:stop].tolist())
                )
            if not parts:
                return Predictions([], np.empty(0, np.int64), self.classes)
            preds = Predictions(
                [i for p in parts for i in p.ids],
                np.concatenate([p.labels for p in parts]),
                self.classes,
                None if parts[0].scores is None else np.concatenate([p.scores for p in parts]),  # type: ignore[misc]
                None if parts[0].proba is None else np.concatenate([p.proba for p in parts]),  # type: ignore[misc]
            )
            if with_content:
                preds.inputs = store_contents(fs)
                preds.true = np.asarray(fs.labels, np.int64)
            return preds

    # ---- persistence --------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        """Everything but the estimator (JSON-ready)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "estimator"}

    def save(self, path: str | Path) -> Path:
        """Write the head and its provenance to one file, atomically, in the safe format
        (skops: loads without running code; whatever the file's suffix)."""
        from .persist import dump_estimator

        return dump_estimator(
            {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "estimator": self.estimator,
                **self.metadata(),
            },
            path,
        )

    @classmethod
    def load(
        cls,
        path: str | Path,
        expected_fingerprint: str | None = None,
        *,
        trusted: bool = False,
    ) -> TrainedHead:
        """Read a head written by :meth:`save`.

        Parameters
        ----------
        path
            The head file.
        expected_fingerprint
            If given, the fingerprint of the features the head will see; another one raises
            :class:`FingerprintMismatchError`.
        trusted
            Also load a pickle (joblib) head, as older embedpipe versions wrote: unpickling
            runs any code the file's author put in it, so only for files you made.
        """
        from .persist import load_estimator

        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"head file {str(path)!r} does not exist; train one with `embedpipe train`."
            )
        blob = load_estimator(path, trusted=trusted)
        if not isinstance(blob, Mapping) or blob.get("format") != FORMAT:
            raise ConfigError(
                f"{str(path)!r} is not an embedpipe head file (written by TrainedHead.save / `embedpipe train`)."
            )
        if int(blob.get("format_version", 0)) > FORMAT_VERSION:
            raise ConfigError(
                f"{str(path)!r} was written by a newer embedpipe (format {blob['format_version']}); upgrade embedpipe."
            )
        head = cls(
            estimator=blob["estimator"],
            **{
                k: blob[k]
                for k in (
                    "spec",
                    "fingerprint",
                    "backbone",
                    "classes",
                    "n_features",
                    "trained_on",
                    "training",
                    "created",
                    "versions",
                )
            },
        )
        if expected_fingerprint is not None:
            head.check_fingerprint(expected_fingerprint)
        return head


def load_head(
    path: str | Path, expected_fingerprint: str | None = None, *, trusted: bool = False
) -> TrainedHead:
    """Load a saved head (see :meth:`TrainedHead.load`; pickles only with ``trusted``).

    Examples
    --------
    >>> from embedpipe.heads._examples import digits_store
    >>> X, y = digits_store("digits.h5")
    >>> head = train_head("digits.h5", "knn", out="knn.skops")
    >>> bool((load_head("knn.skops").predict(X[:20]) == head.predict(X[:20])).all())
    True
    """
    return TrainedHead.load(path, expected_fingerprint, trusted=trusted)


def store_contents(fs: FeatureStore) -> list[str]:
    """Each row's input as the store recorded it (text, or image path), else its id."""
    contents = getattr(fs, "contents", None)
    if contents is not None and not callable(contents) and len(contents) == len(fs):
        return [c.decode() if isinstance(c, bytes) else str(c) for c in contents]
    return [str(i) for i in fs.ids.tolist()]


def train_head(
    store: StoreLike,
    head: HeadSpec | str | Mapping[str, Any] = "logreg",
    *,
    params: Mapping[str, Any] | None = None,
    preprocess: str | Sequence[str] | None = None,
    random_state: int | None = None,
    out_of_core: bool = False,
    batch_size: int = 8192,
    epochs: int = 5,
    out: str | Path | None = None,
    allow_incomplete: bool = False,
) -> TrainedHead:
    """Train a head on the labelled rows of a feature store.

    Parameters
    ----------
    store
        A :class:`~embedpipe.store.FeatureStore` or the path of one.
    head
        A registry name (``"logreg"``, ``"knn"``, ``"torch_mlp"``...), a :class:`HeadSpec`,
        or a dict ``{"name", "params", "preprocess", "random_state"}``.
    params, preprocess, random_state
        Override the spec's fields when given (``preprocess="none"`` for raw features).
    out_of_core
        Train by streaming batches of ``batch_size`` rows for ``epochs`` passes (flat memory;
        heads with ``partial_fit`` only: ``sgd``, ``torch_linear``, ``torch_mlp``). See
        :func:`embedpipe.heads.fit_out_of_core`.
    allow_incomplete
        Use the rows of an unfinished store (an interrupted encode); refused by default.
    out
        If given, save the trained head there (the safe format, see :meth:`TrainedHead.save`).

    Returns
    -------
    TrainedHead

    Examples
    --------
    >>> from embedpipe.heads._examples import digits_store
    >>> _ = digits_store("digits.h5", n=600)
    >>> head = train_head("digits.h5", "logreg", params={"C": 0.5}, out="logreg.skops")
    >>> head.predict_store("digits.h5").names[:3]
    ['0', '1', '2']
    """
    spec = HeadSpec.coerce(head)
    overrides: dict[str, Any] = {}
    if params is not None:
        overrides["params"] = {**dict(spec.params), **dict(params)}
    if preprocess is not None:
        overrides["preprocess"] = preprocess
    if random_state is not None:
        overrides["random_state"] = random_state
    if overrides:
        spec = HeadSpec(**{**spec.__dict__, **overrides})
    with opened(store, allow_incomplete) as fs:
        t0 = time.perf_counter()
        if out_of_core:
            from .outofcore import fit_out_of_core

            require_classes(fs.labels[fs.labels >= 0], repr(str(fs.path)), fs.classes)
            estimator = fit_out_of_core(fs, spec, batch_size=batch_size, epochs=epochs)
            labels = fs.labels[fs.labels >= 0]
            n_rows = int(labels.size)
        else:
            X, labels = load_xy(fs)
            require_classes(labels, repr(str(fs.path)), fs.classes)
            estimator = spec.build()
            check_neighbors(estimator, int(labels.size), spec.name, f"{str(fs.path)!r}")
            estimator = estimator.fit(X, labels)
            n_rows = int(labels.size)
        seconds = time.perf_counter() - t0
        trained = TrainedHead(
            estimator=estimator,
            spec=spec.to_dict(),
            fingerprint=fs.fingerprint,
            backbone=fs.backbone,
            classes=class_names(fs, labels),
            n_features=fs.dim,
            trained_on={
                "path": str(fs.path),
                "dataset_digest": fs.dataset_digest,
                "n_rows": n_rows,
            },
            training={
                "fit_seconds": round(seconds, 4),
                # for the majority-class baseline of evaluations
                "class_counts": np.bincount(
                    labels, minlength=len(class_names(fs, labels))
                ).tolist(),
                "out_of_core": out_of_core,
                **({"batch_size": batch_size, "epochs": epochs} if out_of_core else {}),
            },
        )
    if out is not None:
        trained.save(out)
    return trained
