"""``Embedder``: raw texts / images inside a scikit-learn Pipeline, each item encoded once."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from embedpipe.errors import ConfigError
from embedpipe.heads import Embedder
from embedpipe.heads import embedder as embedder_module


@pytest.fixture(scope="module")
def texts() -> tuple[list[str], np.ndarray]:
    from embedpipe.data import open_source

    src = open_source("builtin:rotten_tomatoes", split="train", limit=300)
    rows = list(range(0, 300, 5))  # 60 snippets of both classes
    return [src.load(i) for i in rows], np.asarray(src.labels)[rows]


@pytest.fixture
def count(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Items that reach the backbone (each call's size), from a clean memory cache."""
    calls: list[int] = []
    real = embedder_module._encode_items

    def counting(encoder, items, batch_size):  # noqa: ANN001, ANN202
        calls.append(len(items))
        return real(encoder, items, batch_size)

    monkeypatch.setattr(embedder_module, "_encode_items", counting)
    embedder_module.clear_memory_cache()
    yield calls
    embedder_module.clear_memory_cache()


def test_grid_search_over_two_heads_encodes_each_item_once(texts, count, tmp_path: Path) -> None:
    X, y = texts
    search = GridSearchCV(
        make_pipeline(Embedder("minilm", cache=tmp_path / "emb"), LogisticRegression()),
        {"logisticregression": [LogisticRegression(max_iter=1000), RidgeClassifier()]},
        cv=3,
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 2  # 2 heads x 3 folds + the refit: 7 fits
    assert sum(count) == len(set(X)) == 60  # yet every snippet went through MiniLM once
    assert search.best_score_ > 0.55

    # the features are MiniLM's own, in the items' order
    from embedpipe.encoding import encode_items

    emb = search.best_estimator_[0]
    direct = encode_items(embedder_module._encoder("minilm", "cpu", "fp32", {}), X[:7])
    np.testing.assert_allclose(emb.transform(X[:7]), direct, atol=1e-6)

    # a new process (memory forgotten) reads the file cache: nothing is encoded again
    embedder_module.clear_memory_cache()
    before = sum(count)
    again = clone(emb).fit(X).transform(list(reversed(X)))
    assert sum(count) == before
    np.testing.assert_allclose(again[::-1], emb.transform(X), atol=0)

    # the cache is a feature store keyed like every other: the data layer's content hashes
    from embedpipe.data import text_content_hash
    from embedpipe.store import FeatureStore

    (path,) = (tmp_path / "emb").glob("*.h5")
    with FeatureStore(path) as fs:
        assert fs.complete and fs.fingerprint == emb.fingerprint_ and len(fs) == 60
        hashes = {bytes(r): i for i, r in enumerate(np.asarray(fs.content_hashes, np.uint8))}
        assert set(hashes) == {text_content_hash(x) for x in X}
        row = hashes[text_content_hash(X[3])]
        np.testing.assert_array_equal(fs.read([row])[0], emb.transform(X[3:4])[0])
        assert fs.contents[row] == X[3]
    with pytest.raises(ConfigError, match="is a file; cache names a folder of feature stores"):
        Embedder("minilm", cache=path).fit(X)


def test_estimator_contract_on_raw_texts(texts, count) -> None:
    X, _ = texts
    emb = Embedder("minilm")
    with pytest.raises(NotFittedError):
        emb.transform(X[:2])
    assert emb.fit(X) is emb and emb.get_params()["backbone"] == "minilm"
    full = emb.transform(X)
    assert full.shape == (60, 384) and full.dtype == np.float32
    perm = np.random.default_rng(0).permutation(60)
    np.testing.assert_array_equal(emb.transform([X[i] for i in perm]), full[perm])  # order
    np.testing.assert_array_equal(emb.transform(X[10:20]), full[10:20])  # subsets
    np.testing.assert_array_equal(emb.fit(X).transform(X), full)  # idempotent fit
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(emb)).transform(X), full)
    np.testing.assert_array_equal(emb.transform(np.asarray(X, dtype=object)[:, None]), full)
    assert emb.get_feature_names_out()[:2].tolist() == ["embedding0", "embedding1"]
    with pytest.raises(ConfigError, match="numbers are features already"):
        emb.transform([0.5, 1.5])
    with pytest.raises(ConfigError, match="embeds texts; got a Image"):
        emb.transform([Image.new("RGB", (8, 8))])


def test_image_paths_and_pil_images_share_the_cache(count, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):
        p = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    emb = Embedder(
        "resnet18", backbone_options={"weights": None, "crop_size": 16, "resize_size": 16}
    ).fit(paths)
    a = emb.transform(paths + paths[:2])
    assert a.shape == (6, 512) and sum(count) == 4
    np.testing.assert_array_equal(a[4:], a[:2])
    with pytest.raises(ConfigError, match="embeds images; 'nope.png' is not an image file"):
        emb.transform(["nope.png"])


def test_a_corrupt_image_is_one_item_error_or_a_skip_inside_grid_search(
    count, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from embedpipe.errors import ItemError

    rng = np.random.default_rng(1)
    paths = []
    for i in range(12):
        p = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    (tmp_path / "5.png").write_bytes(b"truncated")  # a corrupt file among them
    y = [0, 1] * 6
    opts = {"weights": None, "crop_size": 16, "resize_size": 16}

    def search(**kw: object) -> GridSearchCV:
        pipe = make_pipeline(Embedder("resnet18", backbone_options=opts, **kw), RidgeClassifier())
        return GridSearchCV(pipe, {"ridgeclassifier__alpha": [0.1, 1.0]}, cv=2, error_score="raise")

    with pytest.raises(ItemError) as info:
        search().fit(paths, y)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "5.png") in message
    assert "not a readable image" in message and "on_error='skip'" in message
    fitted = search(on_error="skip").fit(paths, y)
    assert fitted.best_estimator_.predict(paths).shape == (12,)
    assert "skipped " + str(tmp_path / "5.png") in caplog.text
    rows = fitted.best_estimator_[0].transform(paths)
    assert not rows[5].any() and rows[4].any()
    with pytest.raises(ConfigError, match="on_error='ignore'"):
        Embedder("resnet18", on_error="ignore").fit(paths)


# scikit-learn's estimator checks: the API checks run as they are. The others generate numeric
# arrays as inputs, which an Embedder refuses by design (it embeds raw texts, images or image
# paths; numbers are features already). Their properties on raw inputs (fit returns self,
# order / subset invariance, idempotent fit, pickling, unfitted error) are tested above.
NUMERIC_INPUT_CHECKS = {
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_complex_data",
    "check_dtype_object",
    "check_estimators_empty_data_messages",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
}


def _check_name(check) -> str:  # noqa: ANN001
    return getattr(check, "func", check).__name__


def _refused_numbers(error: BaseException | None) -> bool:
    """Whether ``error`` is (or was caused by) the Embedder refusing numeric input."""
    while error is not None:
        if isinstance(error, ConfigError) and str(error).startswith("Embedder takes"):
            return True
        error = error.__cause__ or error.__context__
    return False


@parametrize_with_checks([Embedder("minilm")])
def test_sklearn_checks_that_apply(estimator, check) -> None:
    if _check_name(check) not in NUMERIC_INPUT_CHECKS:
        check(estimator)
        return
    with pytest.raises(Exception) as info:  # noqa: PT011 - inspected below
        check(estimator)
    assert _refused_numbers(info.value), info.value
