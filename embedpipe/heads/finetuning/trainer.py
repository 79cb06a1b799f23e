"""Training the top blocks and a new head, from cached activations or from raw inputs.

Both paths draw the same random numbers in the same order (head initialisation, batch order,
dropout), so with the same seed they train the same network: from a cache the frozen bottom
is never run again, from raw inputs it is recomputed on every batch of every epoch.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...backbones.text import TextCollate
from ...data.base import DataSource
from ...errors import ConfigError
from ...store import FeatureStore
from .activations import load_activations
from .model import FineTunedModel
from .split import SplitBackbone

log = logging.getLogger(__name__)

TrainData = DataSource | FeatureStore | str | Path


@dataclass
class FineTuneResult:
    """What :func:`finetune` produced.

    Attributes
    ----------
    model
        The tuned network (best validation epoch when ``val`` was given, else the last).
    history
        One dict per epoch: ``epoch``, ``train_loss``, ``seconds`` and ``val_accuracy``.
    best_epoch
        The epoch whose weights were kept.
    """

    model: FineTunedModel
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int = 0

    @property
    def epoch_seconds(self) -> list[float]:
        return [h["seconds"] for h in self.history]


class _Inputs:
    """A training set as indexable batches of top-block inputs (cached or recomputed)."""

    def __init__(self, data: TrainData, split: SplitBackbone, device: torch.device) -> None:
        self.split, self.device = split, device
        if isinstance(data, (FeatureStore, str, Path)):
            acts, labels, _, classes = load_activations(data, split)
            self.acts: torch.Tensor | None = torch.from_numpy(acts)
            self.source: DataSource | None = None
            self.labels = labels
            self.classes = classes
        elif hasattr(data, "load") and hasattr(data, "labels"):
            self.acts, self.source = None, data
            labels = np.asarray(data.labels, dtype=np.int64)
            rows = np.flatnonzero(labels >= 0)
            ids = np.array([str(data.ids[int(i)]) for i in rows])
            self.rows = rows[np.argsort(ids, kind="stable")]  # id order, as load_activations
            self.labels = labels[self.rows]
            self.classes = list(data.classes)
            self.collate: Any = split.collate
            if split.sequence:
                # pad to the longest text, as the activation cache does: same shapes, so the
                # same dropout masks, so the same training run
                texts = [data.load(int(i)) for i in self.rows]
                enc: Any = split.encoder
                self.collate = TextCollate(enc.tokenizer, max(enc.lengths(texts)), fixed=True)
        else:
            raise ConfigError(
                f"cannot fine-tune on {type(data).__name__}: pass a DataSource (raw inputs) or a cached-activation store."
            )
        if self.labels.size == 0:
            raise ConfigError("no labelled items to fine-tune on.")

    def __len__(self) -> int:
        return int(self.labels.size)

    @property
    def cached(self) -> bool:
        return self.acts is not None

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Top-block inputs of rows ``idx``."""
        if self.acts is not None:
            return self.acts[idx].to(self.device, non_blocking=True)
        assert self.source is not None
        samples = [self.split.preprocess(self.source.load(int(self.rows[i]))) for i in idx.tolist()]
        batch = self.collate(samples)
        if self.split.sequence:
            batch = {k: v.to(self.device) for k, v in batch.items()}
        else:
            batch = batch.to(self.device)
        with torch.no_grad():
            return self.split.bottom(batch)


def _set_train_mode(split: SplitBackbone, head: nn.Module, train_bn: bool) -> None:
    split.bottom.eval()
    split.top.train()
    head.train()
    if not train_bn:
        for m in split.top.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


@torch.no_grad()
def _accuracy(split: SplitBackbone, head: nn.Module, data: _Inputs, batch_size: int) -> float:
    split.top.eval()
    head.eval()
    correct = 0
    for s in range(0, len(data), batch_size):
        idx = torch.arange(s, min(len(data), s + batch_size))
        pred = head(split.top(data.batch(idx))).argmax(1).cpu().numpy()
        correct += int((pred == data.labels[s : s + batch_size]).sum())
    return correct / max(1, len(data))


def finetune(
    split: SplitBackbone,
    train: TrainData,
    *,
    val: TrainData | None = None,
    epochs: int = 10,
    lr: float = 1e-3,
    head_lr: float | None = None,
    weight_decay: float = 1e-4,
    batch_size: int = 64,
    train_bn: bool = True,
    label_smoothing: float = 0.0,
    seed: int = 0,
    device: str = "cpu",
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> FineTuneResult:
    """Train ``split``'s top blocks and a new linear head; the bottom stays frozen.

    Training from cached activations is valid only when the bottom is a fixed function of
    each item: it is not with random input augmentation (the cache holds one view of each
    item; train from raw inputs then). A frozen bottom runs in eval mode either way, so its
    BatchNorm layers use their running statistics and caching changes nothing there.

    Parameters
    ----------
    split
        From :func:`split_backbone`; its ``top`` is trained in place.
    train
        A cached-activation store from :func:`cache_activations` (fast: the bottom is never
        recomputed), or a :class:`~embedpipe.data.DataSource` of raw items (the bottom runs on
        every batch of every epoch, the usual recipe).
    val
        Optional held-out data (either kind); the epoch with the best accuracy is kept.
    epochs, lr, head_lr, weight_decay, batch_size
        AdamW settings (``head_lr`` defaults to ``lr``).
    train_bn
        Update BatchNorm statistics of the unfrozen blocks (``False`` keeps them frozen).
    label_smoothing
        Cross-entropy label smoothing.
    seed
        Seeds the head initialisation, the batch order and dropout (the global torch RNG is
        left as it was). The same seed from a cache or from raw inputs trains the same network.
    device
        ``"cpu"``, ``"cuda"``, ``"auto"``.
    on_epoch
        Called with each epoch's history entry (progress reporting).

    Returns
    -------
    FineTuneResult

    Examples
    --------
    >>> split = split_backbone(encoder, k=3)  # doctest: +SKIP
    >>> cache_activations(split, train_source, "act.h5")  # doctest: +SKIP
    >>> result = finetune(split, "act.h5", epochs=10)  # doctest: +SKIP
    >>> result.model.save("runs/ft")  # doctest: +SKIP
    """
    if epochs < 1 or batch_size < 1:
        raise ConfigError(
            f"fine-tuning needs epochs >= 1 and batch_size >= 1 (got {epochs}, {batch_size})."
        )
    from ..torch_head import resolve_device

    dev = resolve_device(device)
    split.bottom.to(dev)
    split.top.to(dev)
    data = _Inputs(train, split, dev)
    val_data = _Inputs(val, split, dev) if val is not None else None
    n_classes = max(len(data.classes), int(data.labels.max()) + 1)
    classes = data.classes if len(data.classes) == n_classes else [str(i) for i in range(n_classes)]
    labels = torch.from_numpy(data.labels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = nn.Linear(split.feature_dim, n_classes).to(dev)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(
            [
                {"params": list(split.top.parameters()), "lr": lr},
                {"params": list(head.parameters()), "lr": head_lr or lr},
            ],
            weight_decay=weight_decay,
        )
        history: list[dict[str, Any]] = []
        best_acc, best_state, best_epoch = -1.0, None, epochs
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            _set_train_mode(split, head, train_bn)
            total = 0.0
            order = torch.randperm(len(data), generator=gen)
            for s in range(0, len(data), batch_size):
                idx = order[s : s + batch_size]
                logits = head(split.top(data.batch(idx)))
                loss = nn.functional.cross_entropy(
                    logits, labels[idx].to(dev), label_smoothing=label_smoothing
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * idx.numel()
            entry: dict[str, Any] = {
                "epoch": epoch,
                "train_loss": total / len(data),
                "seconds": time.perf_counter() - t0,
            }
            if val_data is not None:
                acc = _accuracy(split, head, val_data, 256)
                entry["val_accuracy"] = acc
                if acc > best_acc:
                    best_acc, best_epoch = acc, epoch
                    best_state = (
                        copy.deepcopy(split.top.state_dict()),
                        copy.deepcopy(head.state_dict()),
                    )
            history.append(entry)
            log.info("fine-tune epoch %d: %s", epoch, entry)
            if on_epoch is not None:
                on_epoch(entry)
        if best_state is not None:
            split.top.load_state_dict(best_state[0])
            head.load_state_dict(best_state[1])
    training = {
        "epochs": epochs,
        "lr": lr,
        "head_lr": head_lr,
        "weight_decay": weight_decay,
        "batch_size": batch_size,
        "train_bn": train_bn,
        "label_smoothing": label_smoothing,
        "seed": seed,
        "from_cache": data.cached,
        "best_epoch": best_epoch,
        "history": history,
    }
    model = FineTunedModel(split, head, classes, training).eval()
    return FineTuneResult(model, history, best_epoch)
