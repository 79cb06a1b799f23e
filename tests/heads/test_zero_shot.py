"""The zero-shot head: scikit-learn's checks, and real predictions of a tiny CLIP next to a probe."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from embedpipe.errors import ConfigError
from embedpipe.heads.zero_shot import ZeroShotClassifier

_XFAIL = {
    "check_classifiers_train": "zero-shot learns nothing from the training features by design "
    "(its weights are text embeddings of the class names), so it cannot reach the check's "
    "training-accuracy threshold on random blobs",
}


@parametrize_with_checks(
    [ZeroShotClassifier("hashing"), ZeroShotClassifier("hashing", templates=("{}", "a {}"))],
    expected_failed_checks=lambda est: _XFAIL,
    xfail_strict=True,
)
def test_sklearn_compatible(estimator, check) -> None:
    check(estimator)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory):
    from embedpipe.backbones.dual_encoder import tiny_clip

    return tiny_clip(str(tmp_path_factory.mktemp("zs") / "clip"))


@pytest.fixture(scope="module")
def digit_features(clip_dir):
    """Real images (sklearn's digits, upscaled RGB) through the tiny CLIP's image tower."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from embedpipe.backbones import load_backbone

    digits = load_digits()
    keep = np.isin(digits.target, [0, 1, 7])
    imgs = [
        Image.fromarray((im * 16).astype(np.uint8)).convert("RGB").resize((32, 32))
        for im in digits.images[keep][:90]
    ]
    enc = load_backbone(f"clip:{clip_dir}", normalize=True)
    X = enc.encode(enc.collate([enc.preprocess(im) for im in imgs])).numpy()
    return X, digits.target[keep][:90], enc


def test_predictions_are_the_nearest_prompt_embedding(digit_features, clip_dir):
    X, y, enc = digit_features
    names = {0: "zero", 1: "one", 7: "seven"}
    templates = ("a photo of the digit {}.", "a handwritten {}")
    clf = ZeroShotClassifier(f"clip:{clip_dir}", class_names=names, templates=templates)
    clf.fit(X, y)
    # Brute force: the text tower's embeddings of every prompt, averaged per class.
    text = enc.encoder_for("text")
    t = text.encode(text.collate([tp.format(names[c]) for c in (0, 1, 7) for tp in templates]))
    t = t.numpy().reshape(3, 2, -1)
    t = t / np.linalg.norm(t, axis=-1, keepdims=True)
    w = t.mean(axis=1)
    w = w / np.linalg.norm(w, axis=1, keepdims=True)
    expected = np.array([0, 1, 7])[np.argmax(X @ w.T, axis=1)]
    np.testing.assert_array_equal(clf.predict(X), expected)
    np.testing.assert_allclose(clf.coef_, w, rtol=0, atol=1e-5)
    assert clf.class_texts_ == ["zero", "one", "seven"]
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1.0)


def test_evaluated_side_by_side_with_a_linear_probe(digit_features, clip_dir):
    from embedpipe.heads.evaluation import cross_validate_heads

    X, y, _ = digit_features
    report = cross_validate_heads(
        {
            "probe": {"name": "logreg", "preprocess": "standardize"},
            "zero-shot": {
                "name": "zero_shot",
                "params": {
                    "text_encoder": f"clip:{clip_dir}",
                    "class_names": {0: "zero", 1: "one", 7: "seven"},
                },
                "preprocess": None,
            },
        },
        (X, y),
        cv=3,
    )
    rows = {r.name: r for r in report.results}
    assert set(rows) == {"probe", "zero-shot"}
    # One table: both heads scored on the same folds and metrics.
    # The probe learns the digits even from a random tiny CLIP (chance is 1/3); zero-shot
    # with random towers has no reason to.
    assert rows["probe"].mean("accuracy") > 0.6
    assert 0.0 <= rows["zero-shot"].mean("accuracy") <= 1.0
    table = report.table()
    assert "probe" in table and "zero-shot" in table


def test_bad_templates_names_and_dimension_are_clear(digit_features, clip_dir):
    X, y, _ = digit_features
    with pytest.raises(ConfigError, match="one '\\{\\}'"):
        ZeroShotClassifier(f"clip:{clip_dir}", templates=("no slot",)).fit(X, y)
    with pytest.raises(ConfigError, match="2 names for 3 classes"):
        ZeroShotClassifier(f"clip:{clip_dir}", class_names=["a", "b"]).fit(X, y.astype(str))
    with pytest.raises(ConfigError, match="embeds into 12 dimensions, the features have 5"):
        ZeroShotClassifier(f"clip:{clip_dir}").fit(X[:, :5], y)
    with pytest.raises(ConfigError, match="needs text_encoder"):
        ZeroShotClassifier().fit(X, y)
