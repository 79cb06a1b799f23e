"""Data sources: ordered items with stable ids, labels and content hashes.

Every source implements :class:`DataSource`; :func:`open_source` builds one from a spec.
"""

from __future__ import annotations

from .arrays import ArraySource
from .base import (
    BaseSource,
    DataSource,
    array_content_hash,
    content_hash,
    content_hashes,
    digest,
    text_content_hash,
)
from .builtin import builtin_names, load_builtin, stratified_sample, stratified_split
from .image_folder import IMAGE_EXTENSIONS, ImageFolderSource
from .labels import encode_labels
from .open import open_source
from .subset import SubsetSource, subset
from .tables import ImageTableSource, TextTableSource, table_columns
from .torchvision_source import TorchvisionSource

__all__ = [
    "IMAGE_EXTENSIONS",
    "ArraySource",
    "BaseSource",
    "DataSource",
    "ImageFolderSource",
    "ImageTableSource",
    "SubsetSource",
    "TextTableSource",
    "TorchvisionSource",
    "array_content_hash",
    "builtin_names",
    "content_hash",
    "content_hashes",
    "digest",
    "encode_labels",
    "load_builtin",
    "open_source",
    "stratified_sample",
    "stratified_split",
    "subset",
    "table_columns",
    "text_content_hash",
]
