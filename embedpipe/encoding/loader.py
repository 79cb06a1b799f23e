"""Turning a DataSource into model-ready batches: DataLoader workers decode and preprocess."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..backbones.base import Encoder, TextEncoder
from ..backbones.pixels import split_preprocess
from ..data.base import DataSource
from ..data.images import decoding_for


@dataclass
class LoadedBatch:
    """A batch plus the source positions it holds and the items that failed.

    ``finish``, when set, turns ``batch`` into the model's input (an image batch travels from
    the workers as uint8 pixels and is normalised once, see
    :mod:`embedpipe.backbones.pixels`); ``seconds`` is the worker time its items took, by step
    (``"decode"``: reading and decoding, ``"preprocess"``: resizing and the rest).
    """

    positions: list[int]
    batch: Any
    failures: list[tuple[int, str]] = field(default_factory=list)
    finish: Callable[[Any], Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def finished(self) -> LoadedBatch:
        """This batch with ``finish`` applied (once)."""
        if self.finish is not None and self.batch is not None:
            self.batch = self.finish(self.batch)
        self.finish = None
        return self


class _Failure:
    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _describe(exc: BaseException) -> str:
    from ..errors import ItemError

    if isinstance(exc, ItemError):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"


class _Items(Dataset):
    """Load + preprocess one item; a failure is returned, not raised, so a batch survives it.

    A split image preprocess (:mod:`embedpipe.backbones.pixels`) only makes the uint8 pixels
    here; the batch is normalised in the main process."""

    def __init__(self, source: DataSource, encoder: Encoder, positions: Sequence[int]) -> None:
        self.source = source
        split = split_preprocess(encoder.preprocess)
        self.preprocess = split.pixels if split is not None else encoder.preprocess
        self.min_side = _decode_min_side(encoder)  # a context manager is made per item
        self.positions = list(positions)

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, k: int) -> tuple[int, Any, float, float]:
        i = self.positions[k]
        t0 = time.perf_counter()
        try:
            with decoding_for(self.min_side):
                item = self.source.load(i)
            t1 = time.perf_counter()
            return i, self.preprocess(item), t1 - t0, time.perf_counter() - t1
        except Exception as e:  # noqa: BLE001 - every failure is reported with the item's id
            return i, _Failure(_describe(e)), time.perf_counter() - t0, 0.0


class _Collate:
    def __init__(self, encoder: Encoder) -> None:
        self.collate = encoder.collate

    def __call__(self, rows: list[tuple[int, Any, float, float]]) -> LoadedBatch:
        ok = [(i, s) for i, s, _, _ in rows if not isinstance(s, _Failure)]
        failures = [(i, s.reason) for i, s, _, _ in rows if isinstance(s, _Failure)]
        t = time.perf_counter()
        batch = self.collate([s for _, s in ok]) if ok else None
        seconds = {
            "decode": sum(r[2] for r in rows),
            "preprocess": sum(r[3] for r in rows) + time.perf_counter() - t,
        }
        return LoadedBatch([i for i, _ in ok], batch, failures, seconds=seconds)


def decoding_for_encoder(encoder: Encoder) -> contextlib.AbstractContextManager[None]:
    """Decode images in the block as ``encoder``'s stores do (a JPEG well over its resize at a
    reduced scale, see :func:`embedpipe.data.images.decoding_for`): queries, predictions and
    the server use it, so that an item's features equal its store row."""
    return decoding_for(_decode_min_side(encoder))


def _decode_min_side(encoder: Encoder) -> int | None:
    split = split_preprocess(encoder.preprocess)
    return split.decode_min_side if split is not None else None


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one intra-op thread inside the block: per-image operations in the main process
    are too small to split, and a thread pool woken for each of them beside a runtime's own
    threads cost 5-10x their single-threaded time (measured on 2 cores)."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _worker_init(_: int) -> None:
    # Workers only decode; one thread each leaves the cores to the model.
    torch.set_num_threads(1)


def auto_workers(modality: str, device: str = "cpu") -> int:
    """DataLoader workers: image decoding gets its own processes; text is tokenised
    in-process beside a CPU model (workers would take its cores) and in workers beside an
    accelerator, ahead of the forwards (see :func:`iter_token_batches`).

    Examples
    --------
    >>> auto_workers("text"), auto_workers("text", "cuda:0") >= 1
    (0, True)
    """
    if modality == "text":
        if torch.device(device).type == "cpu":
            return 0
        return max(1, min(4, (os.cpu_count() or 2) // 2))
    # Measured on 2 cores (MobileNetV2, 320x240 JPEGs): 2 workers 31 img/s, 1 worker 26,
    # in-process 23 — decoding overlaps the model best with one worker per core.
    return max(1, min(8, os.cpu_count() or 2))


def prepare_items(
    preprocess: Callable[[Any], Any],
    load: Callable[[int], Any],
    positions: Iterable[int],
    tokenize: Callable[[list[Any]], list[Any]] | None = None,
) -> tuple[list[int], list[Any], list[tuple[int, str]]]:
    """Preprocess each item (``preprocess(load(i))``: a failure is kept with its reason, not
    raised) and, for text, tokenise the good ones in one batched call: ``(good positions,
    their samples or token arrays, failures)``. The first half of the one text path
    (:func:`sorted_token_batches` is the second), for stores and in-memory items alike."""
    good: list[int] = []
    texts: list[Any] = []
    failures: list[tuple[int, str]] = []
    for i in positions:
        try:
            texts.append(preprocess(load(i)))
            good.append(i)
        except Exception as e:  # noqa: BLE001 - reported with the item's id
            failures.append((i, _describe(e)))
    return good, (tokenize(texts) if tokenize is not None and texts else texts), failures


class _TextChunks(Dataset):
    """Chunks of texts, each loaded, checked and tokenised in one batched fast-tokenizer call
    (in a DataLoader worker when there are workers): every text is tokenised exactly once."""

    def __init__(
        self, source: DataSource, encoder: TextEncoder, positions: Sequence[int], chunk: int
    ) -> None:
        self.source = source
        self.preprocess = encoder.preprocess
        self.tokenize = encoder.tokenize
        self.positions = list(positions)
        self.chunk = chunk

    def __len__(self) -> int:
        return -(-len(self.positions) // self.chunk)

    def __getitem__(self, k: int) -> tuple[list[int], list[Any], list[tuple[int, str]]]:
        part = self.positions[k * self.chunk : (k + 1) * self.chunk]
        return prepare_items(self.preprocess, self.source.load, part, self.tokenize)


def _as_is(x: Any) -> Any:
    return x


#: Texts per tokenizer call in :func:`iter_token_batches` (a fast tokenizer batches in Rust).
TOKENIZE_CHUNK = 2048


def iter_token_batches(
    source: DataSource,
    encoder: TextEncoder,
    positions: Sequence[int],
    *,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
) -> Iterator[LoadedBatch]:
    """The text batches of an encode (see :class:`~embedpipe.backbones.TextEncoder`).

    Every text is tokenised once, in chunks of about :data:`TOKENIZE_CHUNK`, and items are
    sorted by token count (longest first, ties in ``positions`` order; see
    :func:`sorted_token_batches`) so batches pad little; each batch only pads its token ids.

    * ``num_workers == 0``: every chunk is tokenised first and all the items are sorted
      together (the least padding; beside a CPU model nothing could run alongside anyway).
    * ``num_workers > 0``: the DataLoader workers tokenise the chunks ahead while the model
      runs, and each chunk is sorted and batched on its own as it arrives: the first batch
      does not wait for the whole dataset to be tokenised. Chunks are a whole number of
      batches, so only the last batch is short.

    Items that fail to load come last, in one batch of failures, so every good batch is
    written before an error is raised.
    """
    if not positions:
        return
    streaming = num_workers > 0
    chunk = -(-TOKENIZE_CHUNK // batch_size) * batch_size if streaming else TOKENIZE_CHUNK
    loader = DataLoader(
        _TextChunks(source, encoder, positions, chunk),
        batch_size=None,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_as_is,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        persistent_workers=False,
    )
    collate = encoder.collate_tokens
    good: list[int] = []
    tokens: list[Any] = []
    failures: list[tuple[int, str]] = []
    for g, t, f in loader:
        failures += f
        if streaming:
            yield from sorted_token_batches(g, t, batch_size, collate, pin_memory)
        else:
            good += g
            tokens += t
    if not streaming:
        yield from sorted_token_batches(good, tokens, batch_size, collate, pin_memory)
    if failures:
        yield LoadedBatch([], None, failures)


def _token_count(tokens: Any) -> int:
    """A text's token count: the last axis of its token array (``len`` of a plain sample)."""
    shape = getattr(tokens, "shape", None)
    return int(shape[-1]) if shape is not None else len(tokens)


def sorted_token_batches(
    good: list[int],
    tokens: list[Any],
    batch_size: int,
    collate: Callable[[list[Any]], Any],
    pin_memory: bool = False,
) -> Iterator[LoadedBatch]:
    """Batches of tokenised items, longest first (ties in their given order): the one
    length sort of the text path, so a store's rows and :func:`~embedpipe.encoding.encode_items`
    of the same texts come from the same batches.

    Examples
    --------
    >>> import numpy as np
    >>> toks = [np.zeros((1, n)) for n in (2, 5, 3)]
    >>> [lb.positions for lb in sorted_token_batches([10, 11, 12], toks, 2, len)]
    [[11, 12], [10]]
    """
    lengths = np.fromiter((_token_count(t) for t in tokens), dtype=np.int64, count=len(tokens))
    order = np.argsort(-lengths, kind="stable")
    for s in range(0, len(order), batch_size):
        chunk = order[s : s + batch_size]
        batch = collate([tokens[k] for k in chunk])
        if pin_memory:
            batch = _pin(batch)
        yield LoadedBatch([good[k] for k in chunk], batch)


def _pin(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    if isinstance(batch, dict):
        return {k: _pin(v) for k, v in batch.items()}
    return batch


def iter_batches(
    source: DataSource,
    encoder: Encoder,
    positions: Sequence[int],
    *,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
) -> Iterator[LoadedBatch]:
    """Yield :class:`LoadedBatch` es over ``positions`` in order (their ``finish`` not yet
    applied: see :meth:`LoadedBatch.finished`)."""
    if not positions:
        return
    loader = DataLoader(
        _Items(source, encoder, positions),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=_Collate(encoder),
        pin_memory=pin_memory,
        worker_init_fn=_worker_init if num_workers > 0 else None,
        prefetch_factor=4 if num_workers > 0 else None,
        persistent_workers=False,
    )
    split = split_preprocess(encoder.preprocess)
    finish = split.normalize if split is not None else None
    it = iter(loader)
    while True:
        with one_thread() if num_workers == 0 else contextlib.nullcontext():
            lb = next(it, None)
        if lb is None:
            return
        lb.finish = finish
        yield lb
