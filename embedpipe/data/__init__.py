"""Data sources: ordered items with stable ids, labels and content hashes.

Every source implements :class:`DataSource`; :func:`open_source` builds one from a spec,
through the registry of source forms (:mod:`embedpipe.data.forms`, entry-point group
``embedpipe.sources``). Importing a source module registers its forms.
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
    kept_columns,
    reference,
    text_content_hash,
)
from .builtin import builtin_names, load_builtin, stratified_sample, stratified_split
from .forms import SOURCE_FORMS, SourceForm, register_source_form
from .hf import HFImageSource, HFTextSource
from .image_folder import IMAGE_EXTENSIONS, ImageFolderSource
from .labels import encode_labels
from .open import open_source, source_forms
from .subset import SubsetSource, subset
from .tables import ImageTableSource, TableForm, TextTableSource, table_columns
from .torchvision_source import TorchvisionSource

__all__ = [
    "IMAGE_EXTENSIONS",
    "SOURCE_FORMS",
    "ArraySource",
    "BaseSource",
    "DataSource",
    "HFImageSource",
    "HFTextSource",
    "ImageFolderSource",
    "ImageTableSource",
    "SourceForm",
    "SubsetSource",
    "TableForm",
    "TextTableSource",
    "TorchvisionSource",
    "array_content_hash",
    "builtin_names",
    "content_hash",
    "content_hashes",
    "digest",
    "encode_labels",
    "kept_columns",
    "load_builtin",
    "open_source",
    "reference",
    "register_source_form",
    "source_forms",
    "stratified_sample",
    "stratified_split",
    "subset",
    "table_columns",
    "text_content_hash",
]
