"""The one entry of every encode (API, CLI, pipeline stage, fine-tune activation caching):
:func:`encode` takes one validated :class:`~embedpipe.encoding.EncodeOptions` and picks the
one-file engine or the sharded path; neither calls back into it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backbones.base import BackboneSpec, Encoder
from ..backbones.registry import resolve_encoder
from ..data.base import DataSource
from .options import EncodeOptions
from .result import EncodeResult

if TYPE_CHECKING:
    from ..executors import Executor, ExecutorConfig


def encode(
    source: DataSource,
    backbone: Encoder | BackboneSpec | str | Mapping[str, Any],
    out: str | Path,
    options: EncodeOptions | Mapping[str, Any] | None = None,
    *,
    executor: Executor | ExecutorConfig | str | Mapping[str, Any] | None = None,
    **overrides: Any,
) -> EncodeResult:
    """Encode a dataset into a feature store, resuming where an earlier run stopped.

    Parameters
    ----------
    source
        The items to encode (see :mod:`embedpipe.data`).
    backbone
        An :class:`~embedpipe.backbones.Encoder`, a registry name (``"minilm"``,
        ``"torchvision:resnet50"``) or a spec dict from a store's provenance.
    out
        The ``.h5`` store to write. If it exists with the same backbone fingerprint, the encode
        resumes: only the items it lacks are encoded. Another fingerprint is an error.
    options
        An :class:`~embedpipe.encoding.EncodeOptions` (or a mapping of its fields): batch size,
        loader workers, device, precision, ``on_error``, on-disk dtype, overwrite, stores to
        reuse features from, progress bar, ``compile``, ``decode_device``, sharding...
    executor
        Encode as shards on this executor (``"local"``, ``"ray"``, a config or an
        :class:`~embedpipe.executors.Executor`) and merge them into one store; see
        :func:`~embedpipe.encoding.encode_sharded`. Options with ``n_shards`` or ``shard_size``
        shard on the local executor when none is given.
    **overrides
        :class:`~embedpipe.encoding.EncodeOptions` fields on top of ``options``
        (``encode(src, enc, out, batch_size=8)``).

    Returns
    -------
    EncodeResult
        A :class:`~embedpipe.encoding.ShardedEncodeResult` for a sharded encode.

    Notes
    -----
    A thin dispatcher: the backbone is resolved once
    (:func:`~embedpipe.backbones.registry.resolve_encoder`: device, precision and runtime
    applied there), then :func:`~embedpipe.encoding.engine.encode_file` writes one file, or
    :func:`~embedpipe.encoding.sharded.encode_sharded` has its workers run ``encode_file``
    on each shard.

    Raises
    ------
    ConfigError
        A bad option (one line naming it), an unknown backbone or device.
    ItemError
        A bad item with ``on_error="raise"`` (every batch before it is kept).
    StoreError, FingerprintMismatchError
        ``out`` holds another dataset's or backbone's features.

    Examples
    --------
    >>> from embedpipe import load_backbone, open_source
    >>> enc = load_backbone("torchvision:resnet18", weights=None, crop_size=32, resize_size=32)
    >>> res = encode(open_source("builtin:digits?limit=20"), enc, "digits.h5",
    ...              batch_size=8, progress=False)
    >>> res.n_encoded, res.n_resumed
    (20, 0)
    >>> encode(open_source("builtin:digits?limit=20"), enc, "digits.h5", progress=False).n_resumed
    20
    """
    opts = EncodeOptions.of(options, **overrides)
    if executor is not None or opts.sharded:
        from .sharded import encode_sharded

        return encode_sharded(source, backbone, out, opts, executor=executor)
    from .engine import encode_file

    enc = resolve_encoder(
        backbone,
        device=opts.device,
        precision=opts.precision,
        runtime=opts.runtime,
        runtime_min_cosine=opts.runtime_min_cosine,
    )
    return encode_file(source, enc, Path(out), opts)
