"""Whether several stores can be used together (one index, one reuse pool, one resume)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import FingerprintMismatchError, Fix, StoreError
from .reader import FeatureStore

StoreRef = str | Path | FeatureStore


def check_compatible(
    stores: Sequence[StoreRef], *, allow_mixed_precision: bool = False
) -> dict[str, Any]:
    """Check that stores hold features of one backbone, dimension and precision.

    Parameters
    ----------
    stores
        Paths or open :class:`FeatureStore` s.
    allow_mixed_precision
        Accept stores computed at different precisions (``fp32`` and ``bf16`` features of one
        backbone differ by about 1e-3 in cosine; mixing them is refused by default).

    Returns
    -------
    dict
        ``fingerprint``, ``dim`` and ``precisions`` (store → precision).

    Raises
    ------
    FingerprintMismatchError
        Two backbones.
    StoreError
        Different dimensions, or different precisions without ``allow_mixed_precision``.

    Examples
    --------
    >>> import numpy as np
    >>> from embedpipe.store import StoreWriter
    >>> for name, prec in (("a.h5", "fp32"), ("b.h5", "bf16")):
    ...     w = StoreWriter.create(name, dim=2, fingerprint="fp", backbone={}, precision=prec)
    ...     w.append(np.ones((1, 2)), ["x"], [bytes(16)]); w.finalize()
    >>> check_compatible(["a.h5", "b.h5"])
    Traceback (most recent call last):
    ...
    embedpipe.errors.StoreError: stores of different precision: 'a.h5' is 'fp32', 'b.h5' is 'bf16'. Re-encode...
    >>> check_compatible(["a.h5", "b.h5"], allow_mixed_precision=True)["dim"]
    2
    """
    if not stores:
        raise StoreError("check_compatible: no stores given.")
    info: list[tuple[str, str, int, str]] = []
    for s in stores:
        if isinstance(s, FeatureStore):
            info.append((str(s.path), s.fingerprint, s.dim, s.precision))
        else:
            with FeatureStore(s) as fs:
                info.append((str(fs.path), fs.fingerprint, fs.dim, fs.precision))
    first = info[0]
    for path, fp, dim, _ in info[1:]:
        if fp != first[1]:
            raise FingerprintMismatchError(
                f"features of {path!r} next to {first[0]!r}",
                first[1],
                fp,
                "All stores used together must come from one backbone, layer and pooling.",
            )
        if dim != first[2]:
            raise StoreError(
                f"stores of different dimension: {first[0]!r} {first[2]}, {path!r} {dim}."
            )
    precisions = {p: prec for p, _, _, prec in info}
    known = {prec for prec in precisions.values() if prec}
    if len(known) > 1 and not allow_mixed_precision:
        a = next(p for p, prec in precisions.items() if prec)
        b = next(p for p, prec in precisions.items() if prec and prec != precisions[a])
        raise StoreError(
            f"stores of different precision: {a!r} is {precisions[a]!r}, {b!r} is "
            f"{precisions[b]!r}. Re-encode one at the other's precision (and runtime)",
            Fix(", or pass ", allow_mixed_precision=True),
            ".",
        )
    return {"fingerprint": first[1], "dim": first[2], "precisions": precisions}
