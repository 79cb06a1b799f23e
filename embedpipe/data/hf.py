"""Hugging Face ``datasets``: a folder written by ``save_to_disk``, or a hub id (``hf:NAME``).

Both give a :class:`HFTextSource` or :class:`HFImageSource` over one split. Image columns hold
``datasets.Image`` structs (``{"bytes": ..., "path": ...}``), encoded bytes or paths; their
content hash is that of the encoded bytes, so an image reaches the same store row as the same
file in an image folder. Texts hash their UTF-8 bytes, as in tables.

Needs the ``datasets`` package (``pip install "embedpipe[hf]"``); it is imported only when one
of these forms is used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, Fix, NotFoundError
from ..registry import did_you_mean
from .base import DataSource
from .columns import (
    CellImageSource,
    ColumnReader,
    ColumnSource,
    TextColumnSource,
    numbered_ids,
    unknown_column,
)
from .forms import SourceForm, call_with_options, register_source_form
from .images import ImageCell

_LABEL_NAMES = ("label", "labels")


def _require_datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "Hugging Face datasets sources need the datasets package: "
            'pip install "embedpipe[hf]" (or pip install datasets).'
        ) from None
    datasets.disable_progress_bars()
    return datasets


def _column(ds: Any, name: str) -> list[Any]:
    """One column as Python values (raw structs for images, no decoding)."""
    table = ds.select_columns([name]).with_format("arrow")[:]
    return table.column(0).to_pylist()  # type: ignore[no-any-return]


def _is_image_feature(feature: Any) -> bool:
    return type(feature).__name__ == "Image"


def _is_class_label(feature: Any) -> bool:
    return type(feature).__name__ == "ClassLabel"


class DatasetColumns(ColumnReader):
    """The columns of a ``datasets.Dataset`` (a ``ClassLabel`` column gives its names)."""

    def __init__(self, ds: Any, name: str, split: str | None) -> None:
        self.ds = ds
        self.where = name
        self.split = split

    def names(self) -> list[str]:
        return list(self.ds.features)

    def select(self, names: Sequence[str]) -> int:
        return len(self.ds)

    def values(self, name: str) -> list[Any]:
        return _column(self.ds, name)

    def class_names(self, name: str) -> list[str] | None:
        feature = self.ds.features[name]
        return [str(c) for c in feature.names] if _is_class_label(feature) else None

    def default_ids(self, n: int) -> list[str]:
        return numbered_ids(n, f"{self.split or 'all'}/")

    def label(self, label_column: str | None | bool) -> str | None:
        """``label_column`` as given; ``None``: a ``ClassLabel`` column named ``label(s)``, as
        HF datasets have; ``False``: none."""
        if label_column is False:
            return None
        if label_column is None:
            features = self.ds.features
            names = (c for c in _LABEL_NAMES if c in features and _is_class_label(features[c]))
            return next(names, None)
        assert isinstance(label_column, str)
        return label_column


class _HFSource(ColumnSource):
    """Ids (``train/000042``), labels and kept columns of one ``datasets.Dataset`` split."""

    dataset_name: str
    split: str | None

    def _open_dataset(self, ds: Any, name: str, split: str | None) -> DatasetColumns:
        self.dataset_name = self.home = name
        self.split = split
        return DatasetColumns(ds, name, split)

    def _home(self) -> dict[str, Any]:
        return {"dataset": self.dataset_name, "split": self.split}


class HFTextSource(_HFSource, TextColumnSource):
    """The texts of one column of a ``datasets.Dataset``.

    Parameters
    ----------
    dataset
        A ``datasets.Dataset`` (one split).
    text_column
        The column of texts (default ``"text"``).
    label_column
        A label column; default: a ``ClassLabel`` column named ``label``/``labels`` when there is
        one (its names are the classes); ``False`` for none.
    id_column, classes, keep_columns
        As for :class:`~embedpipe.data.TextTableSource`.
    name, split
        Shown in ids (``"train/000042"``), messages and :meth:`describe`.

    Examples
    --------
    >>> from datasets import ClassLabel, Dataset, Features, Value
    >>> ds = Dataset.from_dict({"text": ["good", "bad"], "label": [1, 0]}, features=Features(
    ...     {"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])}))
    >>> src = HFTextSource(ds, split="train")
    >>> src.ids, src.classes, src.labels.tolist(), src.load(1)
    (['train/000000', 'train/000001'], ['neg', 'pos'], [1, 0], 'bad')
    """

    def __init__(
        self,
        dataset: Any,
        text_column: str = "text",
        label_column: str | None | bool = None,
        id_column: str | None = None,
        classes: Sequence[str] | None = None,
        keep_columns: Sequence[str] | str | None = None,
        name: str = "a Hugging Face dataset",
        split: str | None = None,
    ) -> None:
        reader = self._open_dataset(dataset, name, split)
        values = self._read_columns(
            reader, "text_column", text_column, id_column, label_column, classes, keep_columns
        )
        self._set_texts(text_column, values)


class HFImageSource(_HFSource, CellImageSource):
    """The images of one column of a ``datasets.Dataset`` (``datasets.Image``, bytes or paths).

    Parameters
    ----------
    dataset
        A ``datasets.Dataset`` (one split).
    image_column
        The image column (default ``"image"``).
    root
        The folder relative image paths start from (default: the current folder).
    label_column, id_column, classes, keep_columns, name, split
        As for :class:`HFTextSource`.

    Notes
    -----
    Images are decoded by embedpipe (RGB, EXIF orientation, truncated files refused), not by
    ``datasets``. The image column stays in the dataset's memory-mapped Arrow files: worker
    processes receive the dataset, not the bytes.

    Examples
    --------
    >>> import io
    >>> from datasets import Dataset, Features, Image as HFImage
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (5, 4), (0, 9, 0)).save(buf, format="PNG")
    >>> ds = Dataset.from_dict({"image": [{"bytes": buf.getvalue(), "path": "g.png"}]},
    ...                        features=Features({"image": HFImage()}))
    >>> src = HFImageSource(ds)
    >>> src.load(0).getpixel((0, 0)), src.reference(0)
    ((0, 9, 0), 'g.png')
    """

    holder = "dataset"

    def __init__(
        self,
        dataset: Any,
        image_column: str = "image",
        label_column: str | None | bool = None,
        id_column: str | None = None,
        classes: Sequence[str] | None = None,
        keep_columns: Sequence[str] | str | None = None,
        root: str | Path | None = None,
        name: str = "a Hugging Face dataset",
        split: str | None = None,
    ) -> None:
        reader = self._open_dataset(dataset, name, split)
        self._read_columns(
            reader, "image_column", image_column, id_column, label_column, classes, keep_columns
        )
        self.image_column = image_column
        self.root = str(Path(root).expanduser().resolve()) if root is not None else os.getcwd()
        self._images = dataset.select_columns([image_column]).with_format("arrow")
        self._hashes = [None] * len(self.ids)

    def _cell(self, i: int) -> ImageCell:
        value = self._images[i].column(0)[0].as_py()
        return ImageCell(value, self.root, self.ids[i])

    def _describe_extra(self) -> dict[str, Any]:
        return {**super()._describe_extra(), "image_column": self.image_column}


def hf_source(
    dataset: Any, *, name: str, split: str | None, root: str | Path | None = None, **options: Any
) -> DataSource:
    """A text or image source over ``dataset``: ``text_column=`` / ``image_column=`` decide,
    else a ``datasets.Image`` column (images) or a ``text`` column (texts).

    Raises
    ------
    ConfigError
        Neither or both kinds of column, with the columns listed.

    Examples
    --------
    >>> from datasets import Dataset
    >>> hf_source(Dataset.from_dict({"text": ["hi"]}), name="demo", split=None).load(0)
    'hi'
    """
    opts = dict(options)
    modality = opts.pop("modality", None)
    what = f"Hugging Face dataset {name}"
    if modality is None:
        if "text_column" in opts:
            modality = "text"
        elif "image_column" in opts:
            modality = "image"
        else:
            features = dataset.features
            images = [c for c in features if _is_image_feature(features[c])]
            if images and "text" in features:
                raise ConfigError(
                    f"{what} has image column(s) {images} and a 'text' column",
                    Fix("; pass ", image_column=..., text_column=...),
                    ".",
                )
            if images:
                modality, opts["image_column"] = "image", images[0]
            elif "text" in features:
                modality = "text"
            else:
                raise ConfigError(
                    f"{what} has no datasets.Image column and no 'text' column (columns: "
                    f"{list(features)})",
                    Fix("; pass ", text_column=..., image_column=...),
                    ".",
                )
    if modality == "text":
        return call_with_options(HFTextSource, what, dataset, name=name, split=split, **opts)
    if modality == "image":
        return call_with_options(
            HFImageSource, what, dataset, name=name, split=split, root=root, **opts
        )
    raise ConfigError(f"modality={modality!r}; use 'text' or 'image'.")


def _pick_split(splits: Sequence[str], split: str | None, where: str) -> str:
    if split is None:
        if len(splits) == 1:
            return splits[0]
        if "train" in splits:
            return "train"
        raise ConfigError(f"{where} holds splits {list(splits)}; pick one with split=NAME.")
    if split not in splits:
        raise NotFoundError(
            f"split={split!r}: no such split in {where}{did_you_mean(split, list(splits)) or ';'} "
            f"splits: {list(splits)}."
        )
    return split


def is_hf_folder(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``Dataset.save_to_disk`` or
    ``DatasetDict.save_to_disk``."""
    return path.is_dir() and (
        (path / "dataset_dict.json").is_file()
        or ((path / "state.json").is_file() and (path / "dataset_info.json").is_file())
    )


def open_hf_folder(path: str | Path, **options: Any) -> DataSource:
    """A source over a ``save_to_disk`` folder (one ``Dataset``, or a ``DatasetDict``'s split).

    Examples
    --------
    >>> from datasets import Dataset
    >>> Dataset.from_dict({"text": ["a", "b"]}).save_to_disk("reviews_hf")
    >>> len(open_hf_folder("reviews_hf"))
    2
    """
    p = Path(path).expanduser().resolve()
    opts = dict(options)
    split = opts.pop("split", None)
    datasets = _require_datasets()
    where = f"{str(p)!r}"
    if (p / "dataset_dict.json").is_file():
        splits = json.loads((p / "dataset_dict.json").read_text()).get("splits", [])
        split = _pick_split([str(s) for s in splits], split, where)
        ds = datasets.load_from_disk(str(p / split))
    else:
        ds = datasets.load_from_disk(str(p))
        if split is not None and ds.split is not None and str(ds.split) != split:
            raise ConfigError(f"{where} holds split {str(ds.split)!r}, not {split!r}.")
    return hf_source(ds, name=str(p), split=split, root=opts.pop("root", p), **opts)


def open_hf_hub(name: str, **options: Any) -> DataSource:
    """A source over a dataset of the Hugging Face hub (``datasets.load_dataset``).

    Parameters
    ----------
    name
        A hub id (``"imdb"``, ``"user/name"``) or a local folder of data files.
    options
        ``split`` (default ``"train"``), ``config`` (the hub's configuration name),
        ``revision``, ``cache_dir`` (default: datasets' own), and the source options (``text_column``, ``image_column``,
        ``label_column``...).
    """
    if not name:
        raise ConfigError("hf: needs a dataset name, e.g. 'hf:imdb?split=test'.")
    opts = dict(options)
    split = opts.pop("split", None) or "train"
    config = opts.pop("config", None)
    revision = opts.pop("revision", None)
    cache_dir = opts.pop("cache_dir", None)
    datasets = _require_datasets()
    if not Path(name).expanduser().exists():
        # A hub id: fail in seconds when the hub cannot be reached, not after its retries.
        from ..backbones.hf_hub import hf_offline, hub_unreachable

        reason = None if hf_offline() else hub_unreachable()
        if reason is not None:
            raise ConfigError(
                f"hf:{name}: the Hugging Face hub cannot be reached ({reason}). On a machine "
                "without internet set HF_HUB_OFFLINE=1 (cached datasets still load), or run "
                "`datasets.load_dataset(...).save_to_disk(DIR)` where the hub is reachable, "
                "copy DIR here and pass DIR as the data."
            )
    try:
        ds = datasets.load_dataset(
            name, config, split=split, revision=revision, cache_dir=cache_dir
        )
    except (ValueError, KeyError) as e:
        if "split" in str(e).lower():
            raise NotFoundError(f"hf:{name}: {e}") from None
        raise ConfigError(f"hf:{name}: cannot load it: {type(e).__name__}: {e}") from None
    except Exception as e:  # noqa: BLE001 - network, missing dataset, bad config
        raise ConfigError(
            f"hf:{name}: cannot load it ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "On a machine without internet, run `datasets.load_dataset(...).save_to_disk(DIR)` "
            "where the hub is reachable, copy DIR here and pass DIR as the data."
        ) from None
    return hf_source(ds, name=f"hf:{name}", split=split, **opts)


@register_source_form("hf-folder")
class HFFolderForm(SourceForm):
    """A folder written by ``datasets``' ``save_to_disk`` (claims it before the image folder)."""

    priority = 20
    help = "a Hugging Face datasets folder (save_to_disk; ?split=train)"

    def matches(self, path: Path) -> bool:
        return is_hf_folder(path)

    def open(self, target: str | Path, options: dict[str, Any]) -> DataSource:
        return open_hf_folder(target, **options)


@register_source_form("hf")
class HFHubForm(SourceForm):
    """``hf:NAME?split=train&text_column=...``: a Hugging Face hub dataset (connected machines)."""

    scheme = "hf"
    help = "'hf:NAME?split=train&text_column=...|image_column=...' (Hugging Face hub)"

    def open(self, target: str | Path, options: dict[str, Any]) -> DataSource:
        return open_hf_hub(str(target), **options)


__all__ = [
    "HFImageSource",
    "HFTextSource",
    "hf_source",
    "is_hf_folder",
    "open_hf_folder",
    "open_hf_hub",
    "unknown_column",
]
