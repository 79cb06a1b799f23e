"""The model side of the encode loop: out-of-memory halving and host→device prefetch.

* :class:`OomGuard` runs ``encoder.encode(batch)``; when CUDA runs out of memory it splits
  the batch in halves, retries each (recursively, down to one item) and logs it, and keeps
  the smaller size for the batches that follow. No batch is ever lost: a batch of one item
  that still does not fit raises.
* :func:`prefetch_to_device` copies batch ``i + 1`` to the GPU on a side CUDA stream while
  batch ``i`` runs on the default stream (pinned host memory + non-blocking copies).
* :class:`InFlight` keeps one batch's features on their way back from the GPU while the
  next batch is launched, so the host's work on batch ``i`` (the copy back, the store's
  append, the next batch's padding) overlaps the forward of batch ``i + 1``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch

from ..backbones.device import move_batch

log = logging.getLogger("embedpipe.encoding")


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator out-of-memory error.

    Examples
    --------
    >>> is_oom(torch.cuda.OutOfMemoryError("CUDA out of memory")), is_oom(ValueError("x"))
    (True, False)
    """
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    if isinstance(exc, oom | torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def batch_len(batch: Any) -> int | None:
    """Items in a collated batch (first dimension), or ``None`` if it cannot be told."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    if isinstance(batch, Mapping):
        for v in batch.values():
            n = batch_len(v)
            if n is not None:
                return n
        return None
    if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], torch.Tensor):
        return batch_len(batch[0])
    return None


def slice_batch(batch: Any, start: int, stop: int) -> Any:
    """Items ``start:stop`` of a collated batch (a tensor, or a mapping / tuple of them).

    Examples
    --------
    >>> b = {"input_ids": torch.arange(6).view(3, 2), "attention_mask": torch.ones(3, 2)}
    >>> slice_batch(b, 1, 3)["input_ids"].tolist()
    [[2, 3], [4, 5]]
    """
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    if isinstance(batch, Mapping):
        return {k: slice_batch(v, start, stop) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(slice_batch(v, start, stop) for v in batch)
    raise TypeError(f"cannot split a batch of type {type(batch).__name__}")


class OomGuard:
    """Encode batches, halving those that run out of accelerator memory.

    Parameters
    ----------
    encode
        ``batch -> [B, dim] tensor`` (the encoder's ``encode``).
    on_retry
        Called with ``(old_size, new_size)`` each time a batch is halved (for tests/logs).

    Examples
    --------
    >>> calls = []
    >>> def fake(batch):  # runs out of memory above 2 items
    ...     calls.append(len(batch))
    ...     if len(batch) > 2:
    ...         raise torch.cuda.OutOfMemoryError("CUDA out of memory")
    ...     return batch.float()[:, None]
    >>> guard = OomGuard(fake)
    >>> guard(torch.arange(5)).flatten().tolist(), guard.max_rows
    ([0.0, 1.0, 2.0, 3.0, 4.0], 2)
    """

    def __init__(
        self,
        encode: Callable[[Any], torch.Tensor],
        on_retry: Callable[[int, int], None] | None = None,
    ) -> None:
        self.encode = encode
        self.on_retry = on_retry
        self.max_rows: int | None = None  # the largest size known to fit, once one did not
        self.n_halved = 0

    def __call__(self, batch: Any) -> torch.Tensor:
        n = batch_len(batch)
        if n is None:
            return self.encode(batch)
        return self._fit(batch, n)

    def _fit(self, batch: Any, n: int) -> torch.Tensor:
        if self.max_rows is not None and n > self.max_rows:
            step = self.max_rows
            return torch.cat(
                [
                    self._fit(slice_batch(batch, s, min(n, s + step)), min(step, n - s))
                    for s in range(0, n, step)
                ]
            )
        try:
            return self.encode(batch)
        except Exception as e:
            if not is_oom(e) or n <= 1:
                raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = n // 2
        self.max_rows = half if self.max_rows is None else min(self.max_rows, half)
        self.n_halved += 1
        log.warning(
            "out of accelerator memory on a batch of %d items: halved to %d and retried "
            "(later batches are split to at most %d items)",
            n,
            half,
            self.max_rows,
        )
        if self.on_retry is not None:
            self.on_retry(n, half)
        return self._fit(batch, n)


def _tensors(batch: Any) -> Iterator[torch.Tensor]:
    if isinstance(batch, torch.Tensor):
        yield batch
    elif isinstance(batch, Mapping):
        for v in batch.values():
            yield from _tensors(v)
    elif isinstance(batch, (list, tuple)):
        for v in batch:
            yield from _tensors(v)


def prefetch_to_device(
    batches: Iterator[Any],
    device: torch.device,
    get: Callable[[Any], Any],
    put: Callable[[Any, Any], Any],
) -> Iterator[Any]:
    """Yield ``batches`` with their tensors already on ``device``: the copy of the next batch
    is issued on a side CUDA stream before the current one is handed out, so it overlaps the
    current batch's forward. ``get(x)`` returns an item's batch, ``put(x, moved)`` stores the
    moved one back. On a non-CUDA device the batches pass through unchanged.
    """
    if device.type != "cuda":
        yield from batches
        return
    stream = torch.cuda.Stream(device)
    main = torch.cuda.current_stream(device)

    def stage(x: Any) -> Any:
        b = get(x)
        if b is None:
            return x
        with torch.cuda.stream(stream):
            put(x, move_batch(b, device))
        return x

    it = iter(batches)
    try:
        nxt = stage(next(it))
    except StopIteration:
        return
    for x in it:
        cur = nxt
        main.wait_stream(stream)
        b = get(cur)
        if b is not None:
            for t in _tensors(b):
                t.record_stream(main)  # its memory is reused only after the forward is done
        nxt = stage(x)  # enqueued before the current forward: the copy overlaps it
        yield cur
    main.wait_stream(stream)
    b = get(nxt)
    if b is not None:
        for t in _tensors(b):
            t.record_stream(main)
    yield nxt


class HostCopy:
    """Features on their way to host memory: on CUDA a non-blocking copy into pinned memory
    and an event after it; elsewhere the tensor itself. :meth:`numpy` waits for the copy."""

    def __init__(self, features: torch.Tensor) -> None:
        self._event: Any = None
        if features.is_cuda:
            host = torch.empty(features.shape, dtype=features.dtype, pin_memory=True)
            host.copy_(features, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
            features = host
        self._host = features

    def numpy(self) -> Any:
        if self._event is not None:
            self._event.synchronize()
        return self._host.float().numpy()


class InFlight:
    """The encode loop's batches between the forward and the store: ``depth`` of them (0 or
    1) wait while the next is launched, then ``commit(positions, features)`` gets each, in
    order. :meth:`flush` commits the one waiting (after the last batch, and before a failure
    is raised: a batch whose forward finished is never lost).

    Examples
    --------
    >>> done = []
    >>> f = InFlight(lambda pos, x: done.append(pos), depth=1)
    >>> f.push([0, 1], torch.zeros(2, 3)); done
    []
    >>> f.push([2], torch.zeros(1, 3)); done
    [[0, 1]]
    >>> f.flush(); done
    [[0, 1], [2]]
    """

    def __init__(self, commit: Callable[[list[int], Any], None], depth: int) -> None:
        if depth not in (0, 1):
            raise ValueError(f"depth must be 0 or 1, not {depth}")
        self.commit = commit
        self.depth = depth
        self._held: tuple[list[int], HostCopy] | None = None

    def push(self, positions: list[int], features: torch.Tensor) -> None:
        copy = HostCopy(features)  # started before the batch waiting is committed
        if self.depth == 0:
            self.commit(positions, copy.numpy())
            return
        self.flush()
        self._held = (positions, copy)

    def flush(self) -> None:
        if self._held is not None:
            (positions, copy), self._held = self._held, None
            self.commit(positions, copy.numpy())
