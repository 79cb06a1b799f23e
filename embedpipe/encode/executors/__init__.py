"""Executors: where sharded encodes and index builds run.

``local`` (default) runs everything in this process with no extra dependency; ``ray`` runs on
Ray Core actors (``pip install embedpipe[ray]``), one model per actor, re-queuing the shard of
a worker that dies. :func:`encode_sharded` writes one store per shard and merges them into one
logical store; :func:`add_shards_to_index` fills a trained FAISS index from shards in parallel.
"""

from __future__ import annotations

from .base import Completed, Executor, WorkerLostError
from .config import ExecutorConfig
from .factory import BackboneFactory
from .faiss_add import add_shards_to_index
from .local import LocalExecutor
from .plan import DEFAULT_SHARD_SIZE, Shard, plan_shards, shard_bounds, shard_key
from .registry import get_executor
from .sharded import ShardedEncodeResult, ShardOutcome, encode_sharded

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "BackboneFactory",
    "Completed",
    "Executor",
    "ExecutorConfig",
    "LocalExecutor",
    "Shard",
    "ShardOutcome",
    "ShardedEncodeResult",
    "WorkerLostError",
    "add_shards_to_index",
    "encode_sharded",
    "get_executor",
    "plan_shards",
    "shard_bounds",
    "shard_key",
]
