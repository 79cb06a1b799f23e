"""``Embedder``: a scikit-learn transformer that embeds raw texts, images or image paths.

It puts a frozen backbone inside a scikit-learn :class:`~sklearn.pipeline.Pipeline`, so model
selection tools work on raw inputs::

    search = GridSearchCV(make_pipeline(Embedder("minilm"), LogisticRegression()), grid)
    search.fit(texts, labels)

Each item is encoded once: embeddings are kept by the data layer's content hash (of the text,
the image's pixels or the file's bytes, as in every feature store) for the backbone's
fingerprint, in memory for the process (shared by every clone, as ``GridSearchCV`` makes one
per fold and candidate) and, with ``cache="cache/emb"``, in a feature store per backbone
configuration in that folder, which later runs and other processes reuse.

The backbone is loaded once per process and configuration, not once per clone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ..errors import ConfigError, ItemError

log = logging.getLogger(__name__)
_LOCK = threading.RLock()
_ENCODERS: dict[tuple[Any, ...], Any] = {}
#: fingerprint -> {content hash -> embedding}: what this process has encoded or read.
_MEMORY: dict[str, dict[bytes, np.ndarray]] = {}
#: Items encoded by the backbone (not served from a cache) in this process.
stats = {"encoded": 0, "from_memory": 0, "from_file": 0}


def _encoder(
    backbone: str, device: str, precision: str, options: dict[str, Any], runtime: str = "torch"
) -> Any:
    key = (backbone, device, precision, runtime, tuple(sorted(options.items())))
    with _LOCK:
        if key not in _ENCODERS:
            from ..backbones import load_backbone

            _ENCODERS[key] = load_backbone(
                backbone, device=device, precision=precision, runtime=runtime, **options
            )
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


def item_hash(item: Any) -> bytes:
    """The data layer's content hash of one raw item, so an item keys the same row in an
    ``Embedder`` cache as in any feature store: a text's UTF-8 bytes, a file's bytes, an
    array's (or a PIL image's, or a tensor's) dtype, shape and pixels.

    Examples
    --------
    >>> from embedpipe.data import text_content_hash
    >>> item_hash("a snippet") == text_content_hash("a snippet")
    True
    """
    from ..data import array_content_hash, text_content_hash
    from ..data.images import file_hash

    if isinstance(item, str):
        return text_content_hash(item)
    if isinstance(item, Path):
        return file_hash(item, str(item))
    if hasattr(item, "getpalette") and hasattr(item, "mode"):  # PIL: its pixels
        return array_content_hash(np.asarray(item.convert("RGBA") if item.mode == "P" else item))
    if isinstance(item, np.ndarray):
        return array_content_hash(item)
    if hasattr(item, "numpy"):  # a tensor
        return array_content_hash(item.detach().cpu().numpy())
    raise ConfigError(
        f"Embedder cannot hash an item of type {type(item).__name__}; give texts, PIL images, "
        "image paths or arrays."
    )


def _shown(item: Any, key: bytes) -> str:
    """What a person recognises an item by in the cache store: the text or the path."""
    return str(item) if isinstance(item, (str, Path)) else key.hex()


class _StoreCache:
    """Embeddings by content hash in a feature store (one per backbone configuration, in the
    ``cache`` folder): rows are appended by the store's one locked writer, crash-safe, and
    read back by any process; ``embedpipe store info`` and every store reader open it."""

    def __init__(self, path: Path, encoder: Any, precision: str) -> None:
        self.path, self.encoder, self.precision = path, encoder, precision

    def read(self, wanted: set[bytes]) -> dict[bytes, np.ndarray]:
        from ..store import FeatureStore

        if not self.path.exists() or not wanted:
            return {}
        with FeatureStore(self.path) as fs:
            fs.check_fingerprint(str(self.encoder.fingerprint), "Embedder cache")
            hashes = [bytes(r) for r in np.asarray(fs.content_hashes, np.uint8)]
            rows = [i for i, k in enumerate(hashes) if k in wanted]
            feats = fs.read(rows) if rows else np.empty((0, int(self.encoder.dim)), np.float32)
        return {hashes[i]: feats[j] for j, i in enumerate(rows)}

    def write(self, new: dict[bytes, np.ndarray], contents: dict[bytes, str]) -> None:
        from ..store import StoreLock, StoreWriter

        if not new:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = StoreLock(self.path, wait=True).acquire()
        if self.path.exists():
            writer = StoreWriter.open_append(
                self.path,
                fingerprint=str(self.encoder.fingerprint),
                precision=self.precision,
                lock=lock,
            )
        else:
            writer = StoreWriter.create(
                self.path,
                dim=int(self.encoder.dim),
                fingerprint=str(self.encoder.fingerprint),
                backbone=self.encoder.spec.to_dict(),
                precision=self.precision,
                lock=lock,
            )
        try:
            have = writer.committed_ids
            keys = [k for k in new if k.hex() not in have]
            if keys:
                writer.append(
                    np.stack([new[k] for k in keys]).astype(np.float32),
                    [k.hex() for k in keys],
                    keys,
                    contents=[contents[k] for k in keys],
                )
        except BaseException:
            writer.close()
            raise
        writer.finalize()


class Embedder(TransformerMixin, BaseEstimator):
    """Embed raw texts, images or image paths with a frozen backbone (a sklearn transformer).

    Parameters
    ----------
    backbone
        A backbone name :func:`~embedpipe.backbones.load_backbone` knows (``"minilm"``,
        ``"resnet50"``, ``"hf-text:<folder>"``...).
    cache
        A folder of feature stores (one per backbone, precision and runtime) keeping
        embeddings by content hash across runs and processes (``None``: in memory for this
        process only).
    batch_size
        Items per forward pass.
    device, precision
        Where and in what precision the backbone runs.
    runtime
        ``"torch"`` (default), ``"openvino"``, ``"onnxruntime"`` or ``"auto"`` (see
        :mod:`embedpipe.backbones.runtimes`); part of the cached embeddings' key.
    backbone_options
        Other :func:`~embedpipe.backbones.load_backbone` arguments (``weights``, ``layer``,
        ``pooling``, ``crop_size``...).
    on_error
        ``"raise"``: a bad item (a corrupt image, an empty text) raises one
        :class:`~embedpipe.errors.ItemError` naming it. ``"skip"``: it is logged as a warning
        and embedded as a row of zeros (a transformer keeps one row per input; the zeros are
        never cached, so a fixed file is read again).

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
    >>> emb = Embedder("word-vectors:vectors.txt", cache="emb")
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
        runtime: str = "torch",
        on_error: str = "raise",
    ) -> None:
        self.backbone = backbone
        self.cache = cache
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.backbone_options = backbone_options
        self.runtime = runtime
        self.on_error = on_error

    def _load(self) -> Any:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ConfigError(
                f"Embedder(backbone={self.backbone!r}): give a backbone name such as 'minilm'."
            )
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            raise ConfigError(f"Embedder(batch_size={self.batch_size!r}): use an int >= 1.")
        if self.on_error not in ("raise", "skip"):
            raise ConfigError(f"Embedder(on_error={self.on_error!r}): use 'raise' or 'skip'.")
        if self.cache is not None and Path(self.cache).is_file():
            raise ConfigError(
                f"Embedder(cache={str(self.cache)!r}) is a file; cache names a folder of feature "
                "stores (an older Embedder's cache file can be deleted)."
            )
        return _encoder(
            self.backbone,
            self.device,
            self.precision,
            dict(self.backbone_options or {}),
            self.runtime,
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
        self._cache_key = f"{self.fingerprint_}_{self.precision}" + (
            f"_{self.runtime}" if self.runtime != "torch" else ""
        )
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
        keys = [item_hash(x) for x in items]
        out = np.empty((len(items), self.dim_), np.float32)
        with _LOCK:
            memory = _MEMORY.setdefault(self._cache_key, {})
            todo = {k for k in keys if k not in memory}
            stats["from_memory"] += len(keys) - sum(1 for k in keys if k in todo)
            file = (
                _StoreCache(
                    Path(self.cache) / f"{self._cache_key}.h5", self._load(), self.precision
                )
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
                new = self._encode_new(order, [items[first[k]] for k in order], first)
                memory.update(new)
                if file is not None:
                    file.write(new, {k: _shown(items[first[k]], k) for k in new})
            for i, k in enumerate(keys):
                out[i] = memory[k] if k in memory else 0.0  # a skipped item: zeros
        return out

    def _encode_new(
        self, order: list[bytes], raw: list[Any], first: dict[bytes, int]
    ) -> dict[bytes, np.ndarray]:
        """Embeddings of the new items by content hash; bad items raise, or (``on_error=
        "skip"``) are logged and left out."""
        names = [
            str(x) if isinstance(x, Path) else f"#{first[k]}"
            for k, x in zip(order, raw, strict=True)
        ]
        opened: list[Any] = []
        kept: list[int] = []
        for j, item in enumerate(raw):
            try:
                opened.append(self._open(item, names[j]))
                kept.append(j)
            except ItemError as e:
                self._bad(e)
        encoder = self._load()
        while True:
            try:
                feats = _encode_items(encoder, opened, self.batch_size)
                break
            except ItemError as e:  # "#k": the k-th of ``opened``
                k = int(e.item_id.lstrip("#"))
                self._bad(ItemError(names[kept[k]], e.reason))
                del opened[k], kept[k]
        stats["encoded"] += len(kept)
        return {order[j]: feats[n] for n, j in enumerate(kept)}

    def _bad(self, error: ItemError) -> None:
        if self.on_error != "skip":
            raise error
        log.warning("Embedder skipped %s (a row of zeros): %s", error.item_id, error.reason)

    @staticmethod
    def _open(item: Any, name: str = "") -> Any:
        if isinstance(item, Path):
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(item) as im:
                    return im.convert("RGB")
            except (UnidentifiedImageError, OSError, ValueError) as e:
                raise ItemError(
                    name or str(item), f"not a readable image ({type(e).__name__})"
                ) from e
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
