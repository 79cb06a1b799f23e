"""embedpipe: transfer learning by feature extraction.

A frozen pretrained backbone encodes a dataset once into a cached HDF5 feature store; heads,
FAISS indexes and evaluations iterate quickly on those features; a pipeline file ties it
together and re-runs only what changed.

Examples
--------
>>> import embedpipe as ep
>>> src = ep.open_source("builtin:rotten_tomatoes?limit=500")          # doctest: +SKIP
>>> ep.encode(src, "minilm", "cache/reviews.h5")                        # doctest: +SKIP
>>> store = ep.FeatureStore("cache/reviews.h5")                        # doctest: +SKIP

The public names are imported lazily, so ``import embedpipe`` (and the CLI) stays fast.
"""

from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    # errors
    "EmbedpipeError": "embedpipe.errors",
    "ConfigError": "embedpipe.errors",
    "ItemError": "embedpipe.errors",
    "StoreError": "embedpipe.errors",
    "FingerprintMismatchError": "embedpipe.errors",
    "FeatureValueError": "embedpipe.errors",
    # data
    "DataSource": "embedpipe.data",
    "open_source": "embedpipe.data",
    "subset": "embedpipe.data",
    "ImageFolderSource": "embedpipe.data",
    "ImageTableSource": "embedpipe.data",
    "TextTableSource": "embedpipe.data",
    "ArraySource": "embedpipe.data",
    "TorchvisionSource": "embedpipe.data",
    "load_builtin": "embedpipe.data",
    # backbones
    "BackboneSpec": "embedpipe.backbones",
    "Encoder": "embedpipe.backbones",
    "load_backbone": "embedpipe.backbones",
    "list_backbones": "embedpipe.backbones",
    "register_backbone": "embedpipe.backbones",
    "import_weights": "embedpipe.backbones",
    # store
    "FeatureStore": "embedpipe.store",
    "StoreWriter": "embedpipe.store",
    # encode
    "encode": "embedpipe.encoding",
    "encode_items": "embedpipe.encoding",
    "EncodeResult": "embedpipe.encoding",
    "EncodeOptions": "embedpipe.encoding",
    "encode_sharded": "embedpipe.encoding",
    "get_executor": "embedpipe.executors",
    "ExecutorConfig": "embedpipe.executors",
    # heads
    "Embedder": "embedpipe.heads.embedder",
    "train_head": "embedpipe.heads.trained",
    "load_head": "embedpipe.heads.trained",
    "make_head": "embedpipe.heads.spec",
    "register_head": "embedpipe.heads.registry",
    "cross_validate_heads": "embedpipe.heads.evaluation",
    "evaluate_head": "embedpipe.heads.evaluation",
    # pipelines
    "Pipeline": "embedpipe.pipeline",
    "load_pipeline": "embedpipe.pipeline",
    "run_pipeline": "embedpipe.pipeline",
    "pipeline_status": "embedpipe.pipeline",
    "collect_garbage": "embedpipe.pipeline",
    "RunResult": "embedpipe.pipeline",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)


__all__ = sorted(_EXPORTS)
