"""``Embedder``: a scikit-learn transformer that embeds raw texts, images or image paths.

It puts a frozen backbone inside a scikit-learn :class:`~sklearn.pipeline.Pipeline`, so model
selection tools work on raw inputs::

    search = GridSearchCV(make_pipeline(Embedder("minilm"), LogisticRegression()), grid)
    search.fit(texts, labels)

Each item is encoded once: embeddings are kept by content hash (of the text, the image's
pixels or the file's bytes) for the backbone's fingerprint, in memory for the process (shared
by every clone, as ``GridSearchCV`` makes one per fold and candidate) and, with
``cache="cache/emb.h5"``, in an HDF5 file that later runs and other processes reuse.

The backbone is loaded once per process and configuration, not once per clone.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import ConfigError

_LOCK = threading.RLock()
_ENCODERS: dict[tuple[Any, ...], Any] = {}
#: fingerprint -> {content hash -> embedding}: what this process has encoded or read.
_MEMORY: dict[str, dict[bytes, np.ndarray]] = {}
#: Items encoded by the backbone (not served from a cache) in this process.
stats = {"encoded": 0, "from_memory": 0, "from_file": 0}


def _encoder(backbone: str, device: str, precision: str, options: dict[str, Any]) -> Any:
    key = (backbone, device, precision, tuple(sorted(options.items())))
    with _LOCK:
        if key not in _ENCODERS:
            from ..backbones import load_backbone

            _ENCODERS[key] = load_backbone(backbone, device=device, precision=precision, **options)
        return _ENCODERS[key]


def _encode_items(encoder: Any, items: Sequence[Any], batch_size: int) -> np.ndarray:
    from ..encoding import encode_items

    return encode_items(encoder, items, batch_size=batch_size)


def _as_items(X: Any) -> list[Any]:
    """Raw items from a list, a 1-D array, a one-column 2-D array / DataFrame or a Series."""
    from scipy import sparse

    if sparse.issparse(X):
        raise ConfigError(
            "Embedder takes raw inputs (texts, images, image paths); sparse input is not "
            "supported (numbers are features already: give them to the head directly)."
        )
    if hasattr(X, "iloc") and getattr(X, "ndim", 1) == 2:  # DataFrame
        if X.shape[1] != 1:
            raise ConfigError(
                f"Embedder takes one column of raw inputs; got a table with {X.shape[1]} columns "
                "(select the text or image column first)."
            )
        X = X.iloc[:, 0]
    if isinstance(X, (str, bytes)):
        raise ConfigError("Embedder takes a list of raw inputs; got a single string (wrap it).")
    if isinstance(X, (list, tuple)):
        items = list(X)
    elif hasattr(X, "__array__") or hasattr(X, "tolist"):
        arr = np.asarray(X, dtype=object)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise ConfigError(
                f"Embedder takes a list of raw inputs (texts, images, image paths); got an array "
                f"of shape {arr.shape}."
            )
        items = arr.tolist()
    else:
        items = list(X)
    for i, item in enumerate(items):
        if isinstance(item, (int, float, complex, np.number, bool)) or item is None:
            raise ConfigError(
                f"Embedder takes raw texts, images or image paths; item {i} is {item!r} "
                "(numbers are features already: give them to the head directly)."
            )
    return items


def _content_hash(item: Any) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    if isinstance(item, str):
        h.update(b"text\0" + item.encode("utf-8"))
    elif isinstance(item, Path):
        h.update(b"file\0" + item.read_bytes())
    elif hasattr(item, "tobytes") and hasattr(item, "mode") and hasattr(item, "size"):  # PIL
        h.update(f"pil\0{item.mode}\0{item.size}\0".encode() + item.tobytes())
    elif isinstance(item, np.ndarray):
        h.update(f"array\0{item.dtype}\0{item.shape}\0".encode() + item.tobytes())
    elif hasattr(item, "numpy"):  # a tensor
        arr = item.detach().cpu().numpy()
        h.update(f"array\0{arr.dtype}\0{arr.shape}\0".encode() + arr.tobytes())
    else:
        raise ConfigError(
            f"Embedder cannot hash an item of type {type(item).__name__}; give texts, PIL images, "
            "image paths or arrays."
        )
    return h.digest()


class _FileCache:
    """Embeddings by content hash in an HDF5 file: one group per backbone fingerprint
    (``hashes`` (n, 16) uint8, ``features`` (n, dim) float32), appended under a file lock."""

    def __init__(self, path: Path, fingerprint: str, dim: int) -> None:
        self.path, self.fingerprint, self.dim = path, fingerprint, dim

    def _lock(self) -> Any:
        from filelock import FileLock

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path) + ".lock")

    def read(self, wanted: set[bytes]) -> dict[bytes, np.ndarray]:
        import h5py

        if not self.path.exists() or not wanted:
            return {}
        with self._lock(), h5py.File(self.path, "r") as f:
            if self.fingerprint not in f:
                return {}
            g = f[self.fingerprint]
            hashes = [bytes(r) for r in g["hashes"][...]]
            rows = [i for i, k in enumerate(hashes) if k in wanted]
            feats = g["features"][rows] if rows else np.empty((0, self.dim), np.float32)
            return {hashes[i]: feats[j] for j, i in enumerate(rows)}

    def write(self, new: dict[bytes, np.ndarray]) -> None:
        import h5py

        if not new:
            return
        with self._lock(), h5py.File(self.path, "a") as f:
            if self.fingerprint not in f:
                g = f.create_group(self.fingerprint)
                g.create_dataset("hashes", (0, 16), np.uint8, maxshape=(None, 16), chunks=True)
                g.create_dataset(
                    "features", (0, self.dim), np.float32, maxshape=(None, self.dim), chunks=True
                )
                g.attrs["dim"] = self.dim
            g = f[self.fingerprint]
            have = {bytes(r) for r in g["hashes"][...]}
            keys = [k for k in new if k not in have]
            if not keys:
                return
            n = g["hashes"].shape[0]
            g["hashes"].resize(n + len(keys), axis=0)
            g["features"].resize(n + len(keys), axis=0)
            g["hashes"][n:] = np.frombuffer(b"".join(keys), np.uint8).reshape(-1, 16)
            g["features"][n:] = np.stack([new[k] for k in keys]).astype(np.float32)


class Embedder(TransformerMixin, BaseEstimator):
    """Embed raw texts, images or image paths with a frozen backbone (a sklearn transformer).

    Parameters
    ----------
    backbone
        A backbone name :func:`~embedpipe.backbones.load_backbone` knows (``"minilm"``,
        ``"resnet50"``, ``"hf-text:<folder>"``...).
    cache
        An HDF5 file keeping embeddings by content hash across runs and processes
        (``None``: in memory for this process only).
    batch_size
        Items per forward pass.
    device, precision
        Where and in what precision the backbone runs.
    backbone_options
        Other :func:`~embedpipe.backbones.load_backbone` arguments (``weights``, ``layer``,
        ``pooling``, ``crop_size``...).

    Attributes
    ----------
    fingerprint_ : str
        The backbone's fingerprint (what the cached embeddings are keyed by).
    dim_ : int
        The embedding dimension.
    modality_ : str
        ``"text"`` or ``"image"``: strings are texts for a text backbone, paths for an image one.

    Examples
    --------
    A tiny word-vector backbone (any backbone name works the same way, e.g. ``"minilm"``):

    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> _ = open("vectors.txt", "w").write("good 1 0\\ngreat 0.9 0.1\\nbad 0 1\\ndull 0.1 0.9\\n")
    >>> texts = ["good", "bad", "great", "dull", "good great", "bad dull"]
    >>> emb = Embedder("word-vectors:vectors.txt", cache="emb.h5")
    >>> model = make_pipeline(emb, LogisticRegression()).fit(texts, [1, 0] * 3)
    >>> model.predict(["great good", "dull"]).tolist()
    [1, 0]
    """

    def __init__(
        self,
        backbone: str = "minilm",
        cache: str | Path | None = None,
        batch_size: int = 64,
        device: str = "cpu",
        precision: str = "fp32",
        backbone_options: dict[str, Any] | None = None,
    ) -> None:
        self.backbone = backbone
        self.cache = cache
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.backbone_options = backbone_options

    def _load(self) -> Any:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ConfigError(
                f"Embedder(backbone={self.backbone!r}): give a backbone name such as 'minilm'."
            )
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ConfigError(f"Embedder(batch_size={self.batch_size!r}): use an int >= 1.")
        return _encoder(
            self.backbone, self.device, self.precision, dict(self.backbone_options or {})
        )

    def fit(self, X: Any, y: Any = None) -> Embedder:
        """Load the backbone (once per process); the embedding itself learns nothing.

        Returns
        -------
        self
        """
        _as_items(X)
        encoder = self._load()
        self.fingerprint_ = str(encoder.fingerprint)
        # embeddings differ by precision, which the fingerprint does not name
        self._cache_key = f"{self.fingerprint_}_{self.precision}"
        self.dim_ = int(encoder.dim)
        self.modality_ = str(encoder.modality)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Embeddings of the items, ``(n_items, dim_)`` float32 (cached items not re-encoded).

        Raises
        ------
        ConfigError
            Items that are not raw inputs (numbers), a text for an image backbone that is not
            an existing image file, or an image for a text backbone.
        """
        check_is_fitted(self, "fingerprint_")
        items = _as_items(X)
        if self.modality_ == "image":
            items = [Path(x) if isinstance(x, str) else x for x in items]
            missing = [str(x) for x in items if isinstance(x, Path) and not x.is_file()]
            if missing:
                raise ConfigError(
                    f"Embedder({self.backbone!r}) embeds images; {missing[0]!r} is not an image "
                    "file (give PIL images or paths)."
                )
        elif items and not all(isinstance(x, str) for x in items):
            bad = next(x for x in items if not isinstance(x, str))
            raise ConfigError(
                f"Embedder({self.backbone!r}) embeds texts; got a {type(bad).__name__} "
                "(use an image backbone for images)."
            )
        keys = [_content_hash(x) for x in items]
        out = np.empty((len(items), self.dim_), np.float32)
        with _LOCK:
            memory = _MEMORY.setdefault(self._cache_key, {})
            todo = {k for k in keys if k not in memory}
            stats["from_memory"] += len(keys) - sum(1 for k in keys if k in todo)
            file = (
                _FileCache(Path(self.cache), self._cache_key, self.dim_)
                if self.cache is not None
                else None
            )
            if file is not None and todo:
                found = file.read(todo)
                memory.update(found)
                stats["from_file"] += sum(1 for k in keys if k in found)
                todo -= set(found)
            if todo:
                first = {k: i for i, k in reversed(list(enumerate(keys)))}
                order = sorted(todo, key=lambda k: first[k])
                feats = _encode_items(
                    self._load(), [self._open(items[first[k]]) for k in order], self.batch_size
                )
                stats["encoded"] += len(order)
                new = dict(zip(order, feats, strict=True))
                memory.update(new)
                if file is not None:
                    file.write(new)
            for i, k in enumerate(keys):
                out[i] = memory[k]
        return out

    @staticmethod
    def _open(item: Any) -> Any:
        if isinstance(item, Path):
            from PIL import Image

            with Image.open(item) as im:
                return im.convert("RGB")
        return item

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``embedding0`` … ``embedding{dim_ - 1}`` (for ``set_output(transform="pandas")``)."""
        check_is_fitted(self, "dim_")
        return np.asarray([f"embedding{i}" for i in range(self.dim_)], dtype=object)

    def __sklearn_tags__(self):  # noqa: ANN204
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.sparse = False
        tags.requires_fit = True
        tags.non_deterministic = False
        return tags


def clear_memory_cache() -> None:
    """Forget the embeddings kept in memory (the file caches stay)."""
    with _LOCK:
        _MEMORY.clear()
