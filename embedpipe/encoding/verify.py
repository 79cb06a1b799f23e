"""``verify --deep``: re-encode a random sample of a store's items and compare.

A store's checksums (:meth:`embedpipe.store.FeatureStore.verify`) catch damaged bytes; this
catches features that are intact on disk but wrong: a store written by another model version,
weights that changed under the same name, a precision bug. It needs the backbone and the data,
so it lives in the encode layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.base import DataSource
from ..errors import Fix, StoreError

#: Largest accepted ``1 - cosine`` between a stored row and its re-encoding, per precision the
#: store was encoded at (float16 storage adds ~1e-4). bf16 / fp16 rows re-encoded in another
#: batch (other padding, other kernels) differ by up to ~2e-3 here.
TOLERANCE = {"fp32": 1e-4, "bf16": 1e-2, "fp16": 5e-3}


@dataclass
class DeepCheck:
    """The result of :func:`deep_verify`: rows compared, worst ``1 - cosine``, bad row ids."""

    store: Path
    n_checked: int
    tolerance: float
    worst: float
    bad: list[tuple[str, float]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.bad and not self.changed

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": str(self.store),
            "n_checked": self.n_checked,
            "tolerance": self.tolerance,
            "worst_1_minus_cosine": self.worst,
            "bad": self.bad,
            "changed": self.changed,
            "ok": self.ok,
        }


def deep_verify(
    store: str | Path,
    source: DataSource,
    *,
    sample: int = 64,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 32,
    raise_on_error: bool = True,
) -> DeepCheck:
    r"""Re-encode ``sample`` random rows of ``store`` from ``source`` and compare them.

    Parameters
    ----------
    store
        A complete feature store.
    source
        The data it was encoded from (items are matched by id; an item whose content hash
        changed since is reported, not compared).
    sample
        How many rows to re-encode (all rows if the store is smaller).
    device
        Where to run the backbone; the store's recorded precision is used.

    Returns
    -------
    DeepCheck

    Raises
    ------
    StoreError
        When ``raise_on_error`` and a row differs beyond :data:`TOLERANCE` or an item changed.

    Examples
    --------
    >>> from pathlib import Path
    >>> _ = Path("vec.txt").write_text("3 2\ngood 1 0\nbad 0 1\nfilm 1 1\n")
    >>> from embedpipe.data import ArraySource
    >>> from embedpipe.encoding import encode
    >>> src = ArraySource(["good film", "bad film", "good"])
    >>> _ = encode(src, "word-vectors:vec.txt", "wv.h5", progress=False)
    >>> deep_verify("wv.h5", src, sample=2).ok
    True
    """
    from ..backbones import load_backbone
    from ..store import FeatureStore
    from .engine import encode_items

    store = Path(store)
    with FeatureStore(store) as fs:
        n = len(fs)
        rng = np.random.default_rng(seed)
        rows = np.sort(rng.choice(n, size=min(sample, n), replace=False)) if n else np.empty(0, int)
        ids = fs.ids[rows].tolist()
        hashes = [bytes(h) for h in fs.content_hashes[rows]]
        stored = fs.read(rows)
        spec = fs.backbone
        precision = fs.precision.split("+")[0] or "fp32"
        fingerprint = fs.fingerprint
    where = {str(source.ids[i]): i for i in range(len(source))}
    missing = [k for k in ids if k not in where]
    if missing:
        raise StoreError(
            f"verify --deep: {len(missing)} sampled items of {str(store)!r} are not in the data "
            f"given (e.g. {missing[:3]}). Pass the data the store was encoded from."
        )
    enc = load_backbone(spec, device=device, precision=precision)
    if enc.fingerprint != fingerprint:
        raise StoreError(
            f"verify --deep: the backbone rebuilt from {str(store)!r}'s spec has another "
            "fingerprint; its weights changed since the encode."
        )
    changed = [k for k, h in zip(ids, hashes, strict=True) if source.content_hash(where[k]) != h]
    keep = [j for j, k in enumerate(ids) if k not in set(changed)]
    items = [source.load(where[ids[j]]) for j in keep]
    fresh = encode_items(enc, items, batch_size=batch_size) if items else np.empty((0, fs.dim))
    a = stored[keep].astype(np.float64)
    b = fresh.astype(np.float64)
    cos = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
    gap = 1.0 - cos
    tol = TOLERANCE.get(precision, 1e-2)
    bad = [(ids[keep[j]], float(gap[j])) for j in np.flatnonzero(gap > tol)]
    check = DeepCheck(store, len(keep), tol, float(gap.max()) if gap.size else 0.0, bad, changed)
    if raise_on_error and not check.ok:
        what = (
            f"{len(bad)} of {len(keep)} re-encoded rows differ beyond 1 - cosine {tol} "
            f"(worst {check.worst:.3g}, e.g. {[k for k, _ in bad[:3]]})"
            if bad
            else f"{len(changed)} sampled items changed since the encode (e.g. {changed[:3]})"
        )
        raise StoreError(
            f"verify --deep {str(store)!r}: {what}.",
            Fix(" Re-encode it with ", overwrite=True, does="."),
        )
    return check
