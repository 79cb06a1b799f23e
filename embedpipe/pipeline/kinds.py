"""The stage kinds: their parameters (pydantic models), input roles, datasets and versions.

This module is imported by every pipeline command, so it stays light: the code that *runs* a
stage lives in :mod:`embedpipe.pipeline.stages` and is imported only when a stage runs.
Bump a kind's ``version`` whenever its outputs change for the same parameters: every cached
entry of that kind (and everything downstream) becomes stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

KindName = Literal["encode", "train", "evaluate", "index", "finetune", "report"]


class Params(BaseModel):
    """Base of every kind's parameters: unknown keys are errors, values are frozen."""

    # defer_build: a kind's schema is built when a pipeline first uses it (cheap CLI start-up)
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    #: Parameters that change how a stage runs but not what it produces (left out of the key).
    run_only: ClassVar[tuple[str, ...]] = ()

    def key_params(self) -> dict[str, Any]:
        """The canonical parameters that go into the stage key (defaults filled in)."""
        return self.model_dump(mode="json", exclude=set(self.run_only))


class EncodeParams(Params):
    """``encode``: run a frozen backbone over a dataset into a feature store."""

    backbone: str = Field(
        description="Registry name: minilm, torchvision:mobilenet_v2, hf-text:PATH..."
    )
    weights: str | None = Field(
        None, description="Weights enum or local file; 'none' for random init."
    )
    layer: str | None = None
    pooling: str | None = None
    options: dict[str, Any] = Field(
        default_factory=dict, description="Other load_backbone options."
    )
    precision: str = Field("fp32", description="fp32 (default, reproducible), bf16, fp16 or auto.")
    dtype: Literal["float32", "float16"] = "float32"
    on_error: Literal["raise", "skip"] = "raise"
    batch_size: int = Field(64, gt=0)
    num_workers: int | None = Field(None, ge=0)
    device: str = "cpu"
    n_shards: int | None = Field(
        None, ge=1, description="Shards to split into when the run has an executor."
    )
    shard_size: int | None = Field(
        None, ge=1, description="Items per shard when the run has an executor (default 8192)."
    )
    # Sharding changes where and how the work runs, never the features: not in the key.
    run_only: ClassVar[tuple[str, ...]] = (
        "batch_size",
        "num_workers",
        "device",
        "n_shards",
        "shard_size",
    )

    @field_validator("shard_size")
    @classmethod
    def _one_way_to_shard(cls, v: int | None, info: ValidationInfo) -> int | None:
        if v is not None and info.data.get("n_shards") is not None:
            raise ValueError("give n_shards or shard_size, not both")
        return v

    @property
    def sharded(self) -> bool:
        """Whether the stage says how to shard (used when the run has an executor)."""
        return self.n_shards is not None or self.shard_size is not None


class TrainParams(Params):
    """``train``: fit a head on an encode stage's features."""

    head: str = Field(
        description="Head name from embedpipe.heads (logreg, linear_svm, knn, torch_mlp...)."
    )
    options: dict[str, Any] = Field(default_factory=dict, description="The head's hyperparameters.")
    preprocess: str | list[str] | None = Field(
        "standardize", description="standardize, l2, pca:N, l2+pca:64, none."
    )


class EvaluateParams(Params):
    """``evaluate``: score heads (train / finetune stages) on a test encode stage."""

    primary_metric: Literal["accuracy", "balanced_accuracy", "macro_f1", "top_k_accuracy"] = (
        "accuracy"
    )


class IndexParams(Params):
    """``index``: build a FAISS similarity index over an encode stage's features."""

    type: str = Field("auto", description="auto, flat, ivf, hnsw, pq... (see embedpipe.index).")
    metric: Literal["cosine", "l2", "ip"] = "cosine"
    options: dict[str, Any] = Field(default_factory=dict)


class FinetuneParams(Params):
    """``finetune``: train the top blocks of a backbone plus a new linear head on raw items."""

    backbone: str
    weights: str | None = None
    options: dict[str, Any] = Field(default_factory=dict, description="Other backbone options.")
    train_blocks: int = Field(
        2, ge=1, description="Top blocks (CNN) or layers (transformer) to unfreeze."
    )
    epochs: int = Field(5, gt=0)
    lr: float = Field(1e-3, gt=0)
    head_lr: float | None = Field(None, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    train_bn: bool = True
    batch_size: int = Field(64, gt=0, description="Training batch size (changes the result).")
    cache_activations: bool = Field(
        True, description="Run the frozen bottom once, not every epoch."
    )
    encode_batch_size: int = Field(64, gt=0)
    num_workers: int | None = Field(None, ge=0)
    device: str = "cpu"
    run_only: ClassVar[tuple[str, ...]] = (
        "cache_activations",
        "encode_batch_size",
        "num_workers",
        "device",
    )


class ReportParams(Params):
    """``report``: an HTML page with tables, plots and nearest-neighbour examples."""

    title: str | None = None
    n_examples: int = Field(6, ge=0, description="Query items shown with their neighbours.")
    n_neighbors: int = Field(5, gt=0)
    max_points: int = Field(2000, gt=0, description="Points drawn in the 2-D projection.")
    projection: Literal["pca"] = "pca"


@dataclass(frozen=True)
class Role:
    """One named input of a stage: which kinds it accepts, one stage or a list, required or not."""

    kinds: tuple[str, ...]
    many: bool = False
    required: bool = True


@dataclass(frozen=True)
class KindInfo:
    """Everything the framework knows about a stage kind without importing its code."""

    name: str
    version: int
    params: type[Params]
    runner: str  # "module:function", imported when the stage runs
    inputs: dict[str, Role] = field(default_factory=dict)
    datasets: dict[str, bool] = field(default_factory=dict)  # role -> required
    path_params: tuple[str, ...] = ()  # params that may name local files (keyed by content)
    names_in_key: bool = False  # the stage shows its inputs' names, so they are part of its key
    resumable: bool = False  # a crashed run's temporary folder is resumed, not wiped
    loads_models: bool = False
    after_run: str | None = None  # "module:function" called after every run that includes it
    check: str | None = (
        None  # "module:function(stage)" run before anything runs, for stages to build
    )


KINDS: dict[str, KindInfo] = {
    "encode": KindInfo(
        "encode",
        1,
        EncodeParams,
        "embedpipe.pipeline.stages.encode:run",
        datasets={"data": True},
        path_params=("backbone", "weights"),
        resumable=True,
        loads_models=True,
    ),
    "train": KindInfo(
        "train",
        1,
        TrainParams,
        "embedpipe.pipeline.stages.train:run",
        inputs={"train": Role(("encode",))},
        check="embedpipe.pipeline.stages.train:check",
    ),
    "evaluate": KindInfo(
        "evaluate",
        1,
        EvaluateParams,
        "embedpipe.pipeline.stages.evaluate:run",
        inputs={
            "heads": Role(("train", "finetune"), many=True),
            "test": Role(("encode",), required=False),
        },
        names_in_key=True,
    ),
    "index": KindInfo(
        "index",
        1,
        IndexParams,
        "embedpipe.pipeline.stages.index:run",
        inputs={"features": Role(("encode",))},
    ),
    "finetune": KindInfo(
        "finetune",
        1,
        FinetuneParams,
        "embedpipe.pipeline.stages.finetune:run",
        datasets={"train": True, "test": True},
        path_params=("backbone", "weights"),
        loads_models=True,
    ),
    "report": KindInfo(
        "report",
        1,
        ReportParams,
        # The report layer sits above the pipeline: its stage is named, not imported, here.
        "embedpipe.report.stage:run",
        inputs={
            "evaluate": Role(("evaluate",)),
            "test": Role(("encode",), required=False),
            "train": Role(("encode",), required=False),
            "index": Role(("index",), required=False),
        },
        names_in_key=True,
        after_run="embedpipe.report.stage:render_run_page",
    ),
}


def kind_info(kind: str) -> KindInfo:
    """The :class:`KindInfo` of ``kind`` (a :class:`~embedpipe.errors.ConfigError` lists the kinds)."""
    from ..errors import ConfigError

    try:
        return KINDS[kind]
    except KeyError:
        raise ConfigError(f"unknown stage kind {kind!r}; kinds: {', '.join(KINDS)}.") from None
