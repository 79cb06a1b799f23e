"""Classification datasets of ``torchvision.datasets`` that are already on disk."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError, ItemError, NotFoundError
from ..registry import did_you_mean
from .base import Modality, array_content_hash
from .forms import SourceForm, register_source_form
from .image_folder import FileImageSource
from .images import array_to_image, file_hash, open_image, to_rgb


def _is_file_dataset(dataset: Any) -> bool:
    """A DatasetFolder (ImageFolder...) read with torchvision's own PIL loader."""
    from torchvision.datasets.folder import default_loader, pil_loader

    return hasattr(dataset, "samples") and getattr(dataset, "loader", None) in (
        default_loader,
        pil_loader,
    )


def _pixel_array(dataset: Any) -> Any | None:
    data = getattr(dataset, "data", None)
    if data is None or isinstance(data, list | tuple | str):
        return None
    try:
        return data if len(data) == len(dataset) else None
    except TypeError:
        return None


def _targets(dataset: Any) -> np.ndarray:
    for attr in ("targets", "labels", "_labels", "y"):
        t = getattr(dataset, attr, None)
        if t is not None and not callable(t):
            try:
                arr = np.asarray(t)
            except Exception:  # noqa: BLE001 - not array-like; try the next attribute
                continue
            if arr.ndim == 1 and len(arr) == len(dataset):
                break
    else:
        # No label attribute: read each item's target (slow; decodes the images once).
        arr = np.asarray([dataset[k][1] for k in range(len(dataset))])
    if arr.dtype.kind not in "iu":
        raise ConfigError(
            f"{type(dataset).__name__}: targets of dtype {arr.dtype} and shape {arr.shape}; "
            "TorchvisionSource takes classification datasets with one integer class per item."
        )
    return arr.astype(np.int64)


def _split_of(dataset: Any) -> str:
    train = getattr(dataset, "train", None)
    if isinstance(train, bool):
        return "train" if train else "test"
    split = getattr(dataset, "split", None) or getattr(dataset, "_split", None)
    return str(split) if isinstance(split, str) else "all"


class TorchvisionSource(FileImageSource):
    """A ``torchvision.datasets`` classification dataset as a DataSource.

    Parameters
    ----------
    dataset
        A dataset constructed with ``transform=None`` (embedpipe applies the backbone's own
        preprocessing), e.g. ``torchvision.datasets.FashionMNIST(root, train=False)`` or
        ``torchvision.datasets.ImageFolder(root)``.
    split
        The split name used in ids; by default taken from the dataset (``train=True`` →
        ``"train"``, ``train=False`` → ``"test"``, ``split="val"`` → ``"val"``, else ``"all"``).

    Notes
    -----
    Ids are ``"<split>/<index>"`` (``"test/00042"``) — except for folder datasets
    (``ImageFolder``), whose ids are the files' POSIX paths relative to the dataset root, as in
    :class:`~embedpipe.data.ImageFolderSource`. Content hashes: the file bytes for folder
    datasets; otherwise the raw pixel array (``dataset.data[i]``) hashed like
    :class:`~embedpipe.data.ArraySource` does, so the same image gives the same store row
    whichever source it came through. Classes come from ``dataset.classes``.

    Examples
    --------
    >>> import torchvision
    >>> ds = torchvision.datasets.FakeData(size=3, image_size=(3, 8, 8), num_classes=2)
    >>> src = TorchvisionSource(ds)
    >>> src.ids[:2], src.load(0).size
    (['all/00000', 'all/00001'], (8, 8))
    """

    modality: Modality = "image"

    def __init__(self, dataset: Any, split: str | None = None) -> None:
        name = type(dataset).__name__
        if getattr(dataset, "transform", None) is not None:
            raise ConfigError(
                f"{name} was built with transform={dataset.transform!r}; build it with "
                "transform=None: embedpipe applies the backbone's own preprocessing."
            )
        self.dataset = dataset
        self.dataset_name = name
        self.split = split or _split_of(dataset)
        n = len(dataset)
        self._files = _is_file_dataset(dataset)
        self.root = str(Path(getattr(dataset, "root", None) or ".").resolve())
        if self._files:
            self.ids = [Path(os.path.relpath(p, self.root)).as_posix() for p, _ in dataset.samples]
        else:
            width = max(5, len(str(max(n - 1, 0))))
            self.ids = [f"{self.split}/{k:0{width}d}" for k in range(n)]
        self.labels = _targets(dataset)
        classes = getattr(dataset, "classes", None)
        if classes is not None:
            self.classes = [str(c) for c in classes]
        else:
            top = int(self.labels.max(initial=-1))
            self.classes = [str(k) for k in range(top + 1)]
        if len(self.labels) and int(self.labels.max()) >= len(self.classes):
            raise ConfigError(
                f"{name}: label {int(self.labels.max())} but only {len(self.classes)} classes."
            )
        self._pixels = None if self._files else _pixel_array(dataset)
        self._hashes = [None] * n

    def path(self, i: int) -> str:
        """The file of item ``i`` (folder datasets only)."""
        if not self._files:
            raise TypeError(f"{self.dataset_name} is not a folder dataset; its items have no files")
        return str(self.dataset.samples[self._check_index(i)][0])

    def reference(self, i: int) -> str:
        """The file of item ``i`` (folder datasets), else its id (``"test/00042"``)."""
        return self.path(i) if self._files else str(self.ids[self._check_index(i)])

    def load(self, i: int) -> Image.Image:
        """Item ``i`` as a PIL RGB image; a failure raises ItemError naming it."""
        i = self._check_index(i)
        if self._files:
            return open_image(self.path(i), self.ids[i])
        try:
            img = self.dataset[i][0]
        except Exception as e:  # noqa: BLE001 - any dataset failure is this item's error
            raise ItemError(
                self.ids[i], f"{self.dataset_name}[{i}] failed: {type(e).__name__}: {e}"
            ) from None
        if isinstance(img, Image.Image):
            return to_rgb(img)
        if isinstance(img, np.ndarray):
            return array_to_image(img)
        raise ItemError(
            self.ids[i], f"{self.dataset_name}[{i}] returned {type(img).__name__}, not a PIL image"
        )

    def _hash_file(self, i: int) -> bytes:
        if self._files:
            return file_hash(self.path(i), self.ids[i])
        if self._pixels is not None:
            return array_content_hash(np.asarray(self._pixels[i]))
        return array_content_hash(np.asarray(self.load(i)))

    def content_hashes(self, max_workers: int | None = None) -> list[bytes]:
        """All content hashes (files on a thread pool; pixel arrays in-process)."""
        if self._files:
            return super().content_hashes(max_workers)
        return [self.content_hash(i) for i in range(len(self))]

    def _describe_extra(self) -> dict[str, Any]:
        return {"dataset": self.dataset_name, "split": self.split, "root": self.root}

    @classmethod
    def open(
        cls, name: str, root: str | Path, split: str = "test", **kwargs: Any
    ) -> TorchvisionSource:
        """Construct ``torchvision.datasets.<name>`` from ``root`` without downloading.

        Parameters
        ----------
        name
            A class of ``torchvision.datasets`` (``"FashionMNIST"``, ``"CIFAR10"``, ``"ImageFolder"``).
        root
            Its root folder.
        split
            ``"train"``/``"test"`` for datasets with a ``train`` flag, else passed as ``split=``.
        kwargs
            Other constructor arguments.

        Raises
        ------
        ConfigError
            Unknown name, or the dataset is not under ``root`` (says where it looked and how
            to get it).
        """
        import torchvision.datasets as tvd

        found = getattr(tvd, name, None)
        if not (inspect.isclass(found) and issubclass(found, tvd.VisionDataset)):
            names = sorted(n for n in tvd.__all__ if inspect.isclass(getattr(tvd, n, None)))
            raise NotFoundError(
                f"unknown torchvision dataset {name!r}{did_you_mean(name, names) or ';'} "
                f"available: {', '.join(names)}."
            )
        ds_cls: Any = found
        params = inspect.signature(ds_cls.__init__).parameters
        args = dict(kwargs)
        if "download" in params:
            args["download"] = False
        if "train" in params:
            if split not in ("train", "test"):
                raise ConfigError(f"{name} has train and test splits; split={split!r} is neither.")
            args["train"] = split == "train"
        elif "split" in params:
            args["split"] = split
        try:
            dataset = ds_cls(str(root), **args)
        except (RuntimeError, FileNotFoundError, NotADirectoryError) as e:
            if issubclass(ds_cls, tvd.MNIST):
                looked = os.path.join(str(root), name, "raw")
            elif isinstance(getattr(ds_cls, "base_folder", None), str):
                looked = os.path.join(str(root), ds_cls.base_folder)
            else:
                looked = str(root)
            hint = ""
            if name == "FashionMNIST":
                hint = (
                    " On Debian/Ubuntu, `apt-get install dataset-fashion-mnist` installs its files "
                    "to /usr/share/datasets/fashion-mnist: gunzip them into that folder, or use "
                    "open_source('builtin:fashion_mnist')."
                )
            raise ConfigError(
                f"torchvision dataset {name} ({split}) not found: looked in {looked!r} "
                f"({type(e).__name__}: {e}). embedpipe never downloads: run "
                f"torchvision.datasets.{name}({str(root)!r}, download=True) on a machine with "
                f"internet and copy {str(root)!r} here.{hint}"
            ) from None
        return cls(dataset, split=split if ("train" in params or "split" in params) else None)


@register_source_form("torchvision")
class TorchvisionForm(SourceForm):
    """``torchvision:NAME?root=DIR[&split=test]``: a torchvision dataset already on disk."""

    scheme = "torchvision"
    help = "'torchvision:NAME?root=DIR[&split=test]'"

    def open(self, target: str | Path, options: dict[str, Any]) -> TorchvisionSource:
        opts = dict(options)
        root = opts.pop("root", None)
        if root is None:
            raise ConfigError(
                f"torchvision:{target} needs root=DIR, the folder holding the dataset."
            )
        return TorchvisionSource.open(str(target), root, **opts)
