"""Dataset curation from cached features: one cosine kNN graph over one or more stores
(FAISS, read in blocks), and from it exact and near-duplicates, leaks between splits,
outliers and label issues (out-of-fold probabilities of any registered head + confident
learning), as one table.

Names are imported lazily (``import embedpipe.curate`` loads neither FAISS nor scikit-learn).

Examples
--------
>>> from embedpipe.curate import curate
>>> result = curate(["train.h5", "test.h5"])  # doctest: +SKIP
>>> result.table.head()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "COLUMNS": "embedpipe.curate.api",
    "ISSUES": "embedpipe.curate.api",
    "CurateResult": "embedpipe.curate.api",
    "curate": "embedpipe.curate.api",
    "Corpus": "embedpipe.curate.corpus",
    "open_corpus": "embedpipe.curate.corpus",
    "KnnGraph": "embedpipe.curate.graph",
    "build_knn_graph": "embedpipe.curate.graph",
    "Threshold": "embedpipe.curate.duplicates",
    "choose_threshold": "embedpipe.curate.duplicates",
    "Outliers": "embedpipe.curate.outliers",
    "outlier_scores": "embedpipe.curate.outliers",
    "LabelIssues": "embedpipe.curate.labels",
    "confident_learning": "embedpipe.curate.labels",
    "find_label_issues": "embedpipe.curate.labels",
    "out_of_fold_probs": "embedpipe.curate.labels",
}

__all__ = sorted(_EXPORTS)

__getattr__: Any
__dir__: Any
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
