"""The zero-shot estimator (imported by :mod:`embedpipe.heads.zero_shot` when first used).

A zero-shot classifier: class names and prompt templates, embedded by the text tower of a
CLIP-style dual encoder, are the classifier's weights.

``fit`` learns nothing from the features: it records the classes and embeds, for each class,
every template filled with the class's name (``"a photo of a {}."``), averaging the
L2-normalised text embeddings. ``predict`` is the class whose text embedding has the highest
cosine with the (image) features. As a head in the registry (``zero_shot``), ``evaluate``
compares it side by side with the linear probes trained on the same features.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ..errors import ConfigError

DEFAULT_TEMPLATES: tuple[str, ...] = ("a photo of a {}.",)


@functools.lru_cache(maxsize=4)
def _text_encoder_from_name(name: str) -> Any:
    from ..backbones import encoder_for, load_backbone

    return encoder_for(load_backbone(name), "text")


def _hashing_embed(texts: list[str], dim: int) -> np.ndarray:
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(
        analyzer="char_wb", ngram_range=(2, 4), n_features=dim, alternate_sign=False, norm="l2"
    )
    return np.asarray(vec.transform(texts).toarray(), dtype=np.float64)


def _l2(a: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(a, axis=-1, keepdims=True)
    return a / np.where(n > 0, n, 1.0)


class ZeroShotClassifier(ClassifierMixin, BaseEstimator):
    """Zero-shot classification with text embeddings of class names as weights.

    Parameters
    ----------
    text_encoder
        A backbone name or spec dict of a dual encoder (``"clip:<folder>"``; its text tower is
        used), a text :class:`~embedpipe.backbones.Encoder` (or a dual encoder's tower), or
        ``"hashing"`` (character n-gram feature hashing into the features' dimension; a
        baseline for examples and checks, not a model).
    class_names
        The text of each class: ``None`` (the labels as text, ``_`` read as a space), a list
        (index ``i`` names label ``i`` for integer labels 0..n-1, else the ``i``-th sorted
        class), or a dict ``{label: name}``.
    templates
        Prompt templates, each with one ``{}`` for the class name; the class embedding is the
        mean of the normalised template embeddings (CLIP's prompt ensembling).
    logit_scale
        Multiplier of the cosines before the softmax of :meth:`predict_proba` (CLIP: 100).

    Attributes
    ----------
    classes_, n_features_in_
        As every scikit-learn classifier.
    class_texts_
        The name used for each class.
    coef_
        ``[n_classes, n_features]`` normalised class embeddings.

    Examples
    --------
    >>> import numpy as np
    >>> clf = ZeroShotClassifier("hashing", templates=("{}",))
    >>> X = _hashing_embed(["cat", "dog", "cats", "dogs"], 64)
    >>> clf.fit(X, ["cat", "dog", "cat", "dog"]).predict(X).tolist()
    ['cat', 'dog', 'cat', 'dog']
    """

    def __init__(
        self,
        text_encoder: Any = None,
        class_names: Sequence[str] | Mapping[Any, str] | None = None,
        templates: Sequence[str] = DEFAULT_TEMPLATES,
        logit_scale: float = 100.0,
    ) -> None:
        self.text_encoder = text_encoder
        self.class_names = class_names
        self.templates = templates
        self.logit_scale = logit_scale

    def _names(self) -> list[str]:
        classes = self.classes_
        names = self.class_names
        if names is None:
            return [str(c).replace("_", " ") for c in classes]
        if isinstance(names, Mapping):
            missing = [c for c in classes if c not in names and str(c) not in names]
            if missing:
                raise ConfigError(f"class_names has no name for classes {missing[:5]}")
            return [str(names[c] if c in names else names[str(c)]) for c in classes]
        names = [str(n) for n in names]
        ints = np.issubdtype(np.asarray(classes).dtype, np.integer)
        if ints and all(0 <= int(c) < len(names) for c in classes):
            return [names[int(c)] for c in classes]
        if len(names) != len(classes):
            raise ConfigError(
                f"class_names has {len(names)} names for {len(classes)} classes; give one name "
                "per class (in label order) or a dict {label: name}"
            )
        return names

    def _embed(self, texts: list[str], dim: int) -> np.ndarray:
        enc = self.text_encoder
        if enc is None:
            raise ConfigError(
                "ZeroShotClassifier needs text_encoder= (a dual encoder such as "
                "'clip:<folder>', the one that encoded the features)"
            )
        if isinstance(enc, str) and enc == "hashing":
            return _hashing_embed(texts, dim)
        if isinstance(enc, (str, Mapping)):
            import json

            key = enc if isinstance(enc, str) else json.dumps(dict(enc), sort_keys=True)
            enc = _text_encoder_from_name(key) if isinstance(enc, str) else _spec_encoder(key)
        else:
            from ..backbones import encoder_for

            enc = encoder_for(enc, "text")
        out = enc.encode(enc.collate([enc.preprocess(t) for t in texts]))
        return np.asarray(out.numpy(), dtype=np.float64)

    def fit(self, X: Any, y: Any) -> ZeroShotClassifier:
        """Record the classes and embed their prompts (``X`` sets the dimension only)."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if len(self.templates) == 0 or any("{}" not in t for t in self.templates):
            raise ConfigError(
                f"templates {list(self.templates)!r} must be non-empty strings with one '{{}}' "
                "each, e.g. 'a photo of a {}.'"
            )
        self.classes_ = np.unique(y)
        self.class_texts_ = self._names()
        texts = [t.format(n) for n in self.class_texts_ for t in self.templates]
        emb = _l2(self._embed(texts, X.shape[1]))
        if emb.shape[1] != X.shape[1]:
            raise ConfigError(
                f"the text encoder embeds into {emb.shape[1]} dimensions, the features have "
                f"{X.shape[1]}: encode the features with the same dual encoder's image tower"
            )
        emb = emb.reshape(len(self.classes_), len(self.templates), -1).mean(axis=1)
        self.coef_ = _l2(emb)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """``logit_scale`` × cosine of each row to each class embedding."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        scores = float(self.logit_scale) * (_l2(X) @ self.coef_.T)
        return scores[:, 1] - scores[:, 0] if len(self.classes_) == 2 else scores

    def _scores(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return float(self.logit_scale) * (_l2(X) @ self.coef_.T)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of the scaled cosines."""
        s = self._scores(X)
        s = np.exp(s - s.max(axis=1, keepdims=True))
        return s / s.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the highest cosine."""
        scores = self._scores(X)
        return self.classes_[np.argmax(scores, axis=1)]


def _spec_encoder(key: str) -> Any:
    import json

    from ..backbones import encoder_for, load_backbone

    return encoder_for(load_backbone(json.loads(key)), "text")
