"""Images in a folder: class sub-folders give labels, a flat folder gives none."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError
from ._paths import nearby
from .base import BaseSource, DataSource, Modality
from .forms import SourceForm, call_with_options, register_source_form
from .images import IMAGE_EXTENSIONS, file_hash, open_image
from .labels import encode_labels

# Below this many files to hash, a thread pool costs more than it saves.
_POOL_MIN = 32
_BLOCK = 64


def _normalise_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    exts = tuple(sorted({("." + e.lstrip(".")).lower() for e in extensions}))
    if not exts:
        raise ConfigError("extensions is empty; give at least one, e.g. ('.jpg', '.png').")
    return exts


def _walk_images(top: str, exts: tuple[str, ...]) -> list[str]:
    """Image files under ``top`` (recursive, symlinks followed once, hidden entries skipped)."""
    found: list[str] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink cycle
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found.extend(
            os.path.join(dirpath, f)
            for f in filenames
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in exts
        )
    return found


class FileImageSource(BaseSource):
    """Images read from files: decoding, and cached file-byte hashes on a thread pool.

    Subclasses set ``ids`` and ``_hashes`` and implement :meth:`path`.
    """

    modality: Modality = "image"
    _hashes: list[bytes | None]

    def path(self, i: int) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def load(self, i: int) -> Image.Image:
        """Decode item ``i`` into a PIL RGB image; an unreadable file raises ItemError."""
        i = self._check_index(i)
        return open_image(self.path(i), self.ids[i])

    def content_hash(self, i: int) -> bytes:
        """blake2b-128 of the file's bytes (cached)."""
        i = self._check_index(i)
        h = self._hashes[i]
        if h is None:
            h = self._hashes[i] = self._hash_file(i)
        return h

    def content_hashes(self, max_workers: int | None = None) -> list[bytes]:
        """All content hashes, hashing the files not yet hashed on a thread pool.

        File reads and blake2b both release the GIL, so threads overlap I/O and hashing.
        """
        todo = [i for i, h in enumerate(self._hashes) if h is None]
        if len(todo) >= _POOL_MIN:
            workers = max_workers or min(8, (os.cpu_count() or 2) * 2)
            # Contiguous blocks, not one task per file: per-task overhead would dominate for
            # small files already in the page cache.
            blocks = [todo[k : k + _BLOCK] for k in range(0, len(todo), _BLOCK)]
            with ThreadPoolExecutor(max_workers=workers) as pool:
                for block, hashes in zip(blocks, pool.map(self._hash_block, blocks), strict=True):
                    for i, h in zip(block, hashes, strict=True):
                        self._hashes[i] = h
        else:
            for i in todo:
                self.content_hash(i)
        return [h for h in self._hashes if h is not None]

    def reference(self, i: int) -> str:
        """The image file's absolute path."""
        return self.path(i)

    def _hash_block(self, block: list[int]) -> list[bytes]:
        return [self._hash_file(i) for i in block]

    def _hash_file(self, i: int) -> bytes:
        return file_hash(self.path(i), self.ids[i])


class ImageFolderSource(FileImageSource):
    """Image files under a folder.

    With class sub-folders (``root/cat/1.jpg``, ``root/dog/x/2.png``) each top-level sub-folder
    holding images is a class (sorted by name) and its images, at any depth, are labelled with
    it; image files lying directly in ``root`` then get label ``-1``. A folder with no such
    sub-folders is flat: every image is unlabelled and ``classes`` is empty.

    Parameters
    ----------
    root
        The folder.
    extensions
        File extensions taken as images (case-insensitive).
    classes
        Class names in a fixed order (e.g. the train split's, for a test split that lacks a
        class). Every class sub-folder must be one of them.

    Attributes
    ----------
    ids
        POSIX paths relative to ``root``, sorted: stable when the folder moves.

    Notes
    -----
    ``content_hash(i)`` is the blake2b-128 of the file's bytes, computed on first use and cached;
    :meth:`content_hashes` (used by :meth:`digest`) hashes the missing ones on a thread pool.
    ``load(i)`` decodes the file fully (truncated files are errors), applies the EXIF
    orientation and converts to RGB (transparency over white).

    Examples
    --------
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> for name in ("photos/cat/1.jpg", "photos/dog/2.png"):
    ...     Path(name).parent.mkdir(parents=True, exist_ok=True)
    ...     Image.new("RGB", (64, 48)).save(name)
    >>> src = ImageFolderSource("photos/")
    >>> src.classes, src.ids[0], src.load(0).size
    (['cat', 'dog'], 'cat/1.jpg', (64, 48))
    """

    modality: Modality = "image"

    def __init__(
        self,
        root: str | Path,
        extensions: Iterable[str] = IMAGE_EXTENSIONS,
        classes: Sequence[str] | None = None,
    ) -> None:
        root_path = Path(root).expanduser()
        if not root_path.exists():
            raise ConfigError(f"image folder {str(root)!r} does not exist; {nearby(root_path)}.")
        if not root_path.is_dir():
            raise ConfigError(
                f"{str(root)!r} is a file, not a folder. For a table of image paths use "
                "ImageTableSource (or open_source('table.csv', path_column=...))."
            )
        self.root = str(root_path.resolve())
        self.extensions = _normalise_extensions(extensions)
        files = _walk_images(self.root, self.extensions)
        if not files:
            sample = sorted(os.listdir(self.root))[:10]
            raise ConfigError(
                f"no image files with extensions {list(self.extensions)} under {self.root!r} "
                f"(it holds: {sample or 'nothing'}). Pass extensions=... if your images use "
                "another one."
            )
        rel = sorted(Path(os.path.relpath(f, self.root)).as_posix() for f in files)
        top = [r.split("/", 1)[0] if "/" in r else None for r in rel]
        self.ids = rel
        if any(t is not None for t in top):
            self.labels, self.classes = encode_labels(
                top, classes, what=f"class folders of {self.root!r}", ids=rel, as_strings=True
            )
        else:
            self.labels = np.full(len(rel), -1, dtype=np.int64)
            self.classes = [str(c) for c in classes] if classes is not None else []
        self._hashes: list[bytes | None] = [None] * len(rel)

    def path(self, i: int) -> str:
        """Absolute path of item ``i``."""
        return os.path.join(self.root, *self.ids[self._check_index(i)].split("/"))

    def _describe_extra(self) -> dict[str, Any]:
        return {"root": self.root, "extensions": list(self.extensions)}


@register_source_form("image-folder")
class ImageFolderForm(SourceForm):
    """A local folder of images (the lowest-priority folder form)."""

    help = "a folder of images (class sub-folders = labels)"

    def matches(self, path: Path) -> bool:
        return path.is_dir()

    def open(self, target: str | Path, options: dict[str, Any]) -> DataSource:
        return call_with_options(
            ImageFolderSource, f"image folder {str(target)!r}", Path(target), **options
        )
