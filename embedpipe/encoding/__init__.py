"""The extraction engine: data loader → frozen backbone → background HDF5 writer.

(Named ``encoding`` so that the package never hides the function ``embedpipe.encode``.)

:func:`encode` is the single entry, a dispatcher; :class:`EncodeOptions` is the one
validated encode request; :func:`encode_file` encodes one store file in this process, and
:func:`encode_sharded` (chosen by :func:`encode` when an executor is given) splits the work
into shards on an :mod:`embedpipe.executors` executor, each shard an ``encode_file``. Names are imported on first
use, so ``embedpipe.encoding.options`` can be imported (e.g. to validate a pipeline file)
without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .dispatch import encode
    from .engine import encode_file, encode_items
    from .factory import BackboneFactory
    from .options import EncodeOptions
    from .plan import DEFAULT_SHARD_SIZE, Shard, plan_shards, shard_bounds, shard_key
    from .result import EncodeResult, summary_line
    from .sharded import ShardedEncodeResult, ShardOutcome, encode_sharded

_EXPORTS = {
    "encode": "dispatch",
    "encode_file": "engine",
    "encode_items": "engine",
    "BackboneFactory": "factory",
    "EncodeOptions": "options",
    "DEFAULT_SHARD_SIZE": "plan",
    "Shard": "plan",
    "plan_shards": "plan",
    "shard_bounds": "plan",
    "shard_key": "plan",
    "EncodeResult": "result",
    "summary_line": "result",
    "ShardedEncodeResult": "sharded",
    "ShardOutcome": "sharded",
    "encode_sharded": "sharded",
}

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "BackboneFactory",
    "EncodeOptions",
    "EncodeResult",
    "Shard",
    "ShardOutcome",
    "ShardedEncodeResult",
    "encode",
    "encode_file",
    "encode_items",
    "encode_sharded",
    "plan_shards",
    "shard_bounds",
    "shard_key",
    "summary_line",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS, prefix="embedpipe.encoding.")
