"""What an encode did: :class:`EncodeResult`, and its one-line summary."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EncodeResult:
    """What an encode did.

    ``n_encoded`` rows went through the model in this call, ``n_reused`` were copied from
    other stores by content hash, ``n_resumed`` were already in the store, ``n_skipped`` items
    failed and were skipped (``on_error='skip'``). ``seconds`` is the whole call (model
    loading and content hashing included), ``encode_seconds`` the loader → model → writer loop.
    """

    path: Path
    n_items: int
    n_encoded: int
    n_reused: int
    n_resumed: int
    n_skipped: int
    seconds: float
    encode_seconds: float
    fingerprint: str
    device: str
    precision: str
    runtime: str = ""
    #: Seconds by step of the encode loop: ``forward``, ``write`` and ``normalize`` in the main
    #: process; ``decode`` and ``preprocess`` summed over the items (in DataLoader workers they
    #: overlap the forward). Empty where not measured (a GPU, texts, shards).
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def items_per_s(self) -> float:
        return self.n_encoded / self.encode_seconds if self.encode_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        d["items_per_s"] = round(self.items_per_s, 2)
        return d

    def summary(self) -> str:
        """One readable line: see :func:`summary_line`."""
        return summary_line(self)


def summary_line(result: EncodeResult) -> str:
    """The line every encode logs (and the CLI prints): items, what happened to them, speed
    and where the store is.

    Examples
    --------
    >>> r = EncodeResult(Path("cache/x.h5"), 100, 60, 30, 10, 0, 2.5, 2.0, "ab12", "cpu", "fp32")
    >>> summary_line(r)
    'cache/x.h5: 100 items (60 encoded, 30 reused, 10 already there, 0 skipped) in 2.5s [30.0 items/s, cpu, fp32]'
    """
    shards = ""
    n_shards = getattr(result, "n_shards", 0)
    if n_shards:
        shards = (
            f", {n_shards} shards ({getattr(result, 'n_shards_cached', 0)} already complete) "
            f"on {getattr(result, 'executor', '')}"
        )
    return (
        f"{result.path}: {result.n_items} items ({result.n_encoded} encoded, "
        f"{result.n_reused} reused, {result.n_resumed} already there, "
        f"{result.n_skipped} skipped{shards}) in {result.seconds:.1f}s "
        f"[{result.items_per_s:.1f} items/s, {result.device}, {result.precision}]"
        + (f"; runtime: {result.runtime}" if getattr(result, "runtime", "") else "")
        + (f"; time: {steps_line(result.steps)}" if getattr(result, "steps", None) else "")
    )


#: The steps :func:`steps_line` names, in the order an item goes through them.
STEPS = ("decode", "preprocess", "normalize", "forward", "write")


def steps_line(steps: dict[str, float]) -> str:
    """Where an encode's time went, e.g. for the summary line.

    Examples
    --------
    >>> steps_line({"forward": 9.51, "write": 0.2, "decode": 3.0, "preprocess": 2.25})
    'decode 3.0s, preprocess 2.2s (summed over items: workers run them beside the forward), forward 9.5s, write 0.2s'
    """
    items = ", ".join(f"{k} {steps[k]:.1f}s" for k in STEPS[:2] if k in steps)
    if items:
        items += " (summed over items: workers run them beside the forward)"
    main = ", ".join(f"{k} {steps[k]:.1f}s" for k in STEPS[2:] if k in steps)
    return ", ".join(x for x in (items, main) if x)


def log_summary(log: logging.Logger, result: EncodeResult) -> None:
    """Log :func:`summary_line` at INFO, tagged ``summary_of=<store path>`` so that a caller
    that prints the line itself (the CLI) can leave the log's copy out."""
    log.info("%s", summary_line(result), extra={"summary_of": str(result.path)})
