"""Saving and loading heads without running code from the file.

Heads are written with scikit-learn's :mod:`skops.io` (a zip of JSON and ``.npy`` arrays, no
pickle). Loading checks every type the file names against an allow-list before anything is
built: skops's own defaults (scikit-learn estimators, numpy, builtins), the estimator classes of
the registered heads (plugins included), the preprocessing steps and a few scikit-learn
internals (trees, gradient-boosting predictors). A file naming any other type is refused.

Older heads are joblib pickles; unpickling one can run any code its author put in it, so it
loads only with ``trusted=True`` (CLI: ``--trust``). Re-save it to get the safe format.

Examples
--------
>>> from sklearn.datasets import load_digits
>>> from embedpipe.heads import make_head
>>> X, y = load_digits(return_X_y=True)
>>> est = make_head("knn", preprocess="l2").fit(X, y)
>>> path = dump_estimator({"estimator": est}, "knn.skops")
>>> bool((load_estimator(path)["estimator"].predict(X[:50]) == est.predict(X[:50])).all())
True
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import ConfigError

log = logging.getLogger(__name__)

ZIP_MAGIC = b"PK\x03\x04"

#: scikit-learn internals of the shipped heads that skops does not trust by default (plain
#: data holders: tree arrays, gradient-boosting predictors).
SKLEARN_INTERNALS = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
)

#: Extra types a plugin may allow (``"module.Class"``); registered heads are allowed already.
EXTRA_TRUSTED: set[str] = set()


def _qualname(t: type) -> str:
    return f"{t.__module__}.{t.__qualname__}"


def trusted_types() -> set[str]:
    """Every type a head file may name: registered heads' classes, preprocessing, internals.

    Examples
    --------
    >>> "embedpipe.heads.knn.FaissKNNClassifier" in trusted_types()
    True
    """
    from .registry import HEADS, _as_info

    HEADS.load_plugins()
    names = set(SKLEARN_INTERNALS) | EXTRA_TRUSTED
    for name, entry in HEADS.items():
        try:
            names.add(_qualname(_as_info(name, entry).estimator_type()))
        except Exception as e:  # noqa: BLE001 - one broken plugin head must not block the rest
            log.warning("head %r: cannot tell its estimator type (%s); not allow-listed", name, e)
    return names


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A uniquely named temporary file in ``path``'s folder, moved onto ``path`` on success.

    Two writers of one target never share a temporary file; a failed write leaves none.

    Examples
    --------
    >>> with atomic_path("out.txt") as tmp:
    ...     _ = tmp.write_text("hi")
    >>> Path("out.txt").read_text(), sorted(p.name for p in Path(".").iterdir())
    ('hi', ['out.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def dump_estimator(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` (a dict holding an estimator and metadata) in the safe format, atomically.

    Raises
    ------
    ConfigError
        When ``obj`` holds something skops cannot write (a plugin head holding torch objects:
        give it a ``__getstate__`` of plain arrays, as :class:`TorchHeadClassifier` has).
    """
    import skops.io as sio

    path = Path(path)
    try:
        data = sio.dumps(obj)
    except Exception as e:  # noqa: BLE001 - skops raises many kinds
        raise ConfigError(
            f"cannot save the head to {str(path)!r} in the safe format: {e}. Give the estimator a "
            "__getstate__ made of numpy arrays and plain values."
        ) from e
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def load_estimator(path: str | Path, *, trusted: bool = False) -> Any:
    """Read what :func:`dump_estimator` wrote; a pickle (joblib) file only with ``trusted``.

    Parameters
    ----------
    path
        A head file.
    trusted
        Also load pickle/joblib files (they can run code when loaded: only files you made).

    Raises
    ------
    ConfigError
        The file names a type outside :func:`trusted_types`, is not a skops zip (so a pickle,
        compressed or not) and ``trusted`` is false, or cannot be read.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            magic = f.read(len(ZIP_MAGIC))
    except OSError as e:
        raise ConfigError(f"cannot read head file {str(path)!r}: {e}.") from e
    if magic == ZIP_MAGIC:
        return _load_skops(path, trusted=trusted)
    # Anything that is not a skops zip is a pickle to joblib (plain, or bz2 / gzip / lzma / zlib
    # / lz4 compressed, which joblib unpacks before unpickling): whether it runs code cannot be
    # told from its bytes, so the format alone decides.
    if not trusted:
        raise ConfigError(
            f"head file {str(path)!r} is not in the safe (skops) format, so it is a pickle "
            "(joblib) to the loader: loading it runs code from the file. Pass --trust "
            "(trusted=True) only if you made it, then save it again (TrainedHead.save) to get "
            "the safe format."
        )
    import joblib

    try:
        return joblib.load(path)
    except Exception as e:
        raise ConfigError(f"cannot read head file {str(path)!r}: {e}. Train the head again.") from e


def _load_skops(path: Path, *, trusted: bool) -> Any:
    import skops.io as sio

    data = path.read_bytes()
    try:
        found = sio.get_untrusted_types(data=data)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"cannot read head file {str(path)!r}: {e}. Train the head again.") from e
    refused = sorted(set(found) - trusted_types())
    if refused and not trusted:
        raise ConfigError(
            f"head file {str(path)!r} names types embedpipe does not load without trust: "
            f"{', '.join(refused)}. Load it with --trust (trusted=True) only if you made it."
        )
    try:
        return sio.load(io.BytesIO(data), trusted=found)
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"cannot read head file {str(path)!r}: {e}. Train the head again.") from e
