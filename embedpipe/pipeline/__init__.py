"""Reproducible pipelines: a YAML (or Python) graph of stages over a content-hash cache.

Importing this package is cheap (no torch, no scikit-learn): the stages' code is imported only
when a stage actually runs, so a fully cached re-run costs little more than interpreter start.
"""

from __future__ import annotations

from .cache import Cache, cache_root, default_cache_dir
from .context import Entry, StageContext
from .dag import render_dag
from .gc import GcItem, GcResult, collect_garbage
from .kinds import STAGE_KINDS, KindInfo, Params, Role, kind_info, register_stage_kind
from .pipeline import Pipeline, StageKey, load_pipeline
from .runner import PipelineRunner, RunResult, StageRun, run_pipeline
from .status import StageStatus, pipeline_status

__all__ = [
    "STAGE_KINDS",
    "Cache",
    "Entry",
    "GcItem",
    "GcResult",
    "KindInfo",
    "Params",
    "Pipeline",
    "PipelineRunner",
    "Role",
    "RunResult",
    "StageContext",
    "StageKey",
    "StageRun",
    "StageStatus",
    "cache_root",
    "collect_garbage",
    "default_cache_dir",
    "kind_info",
    "load_pipeline",
    "pipeline_status",
    "register_stage_kind",
    "render_dag",
    "run_pipeline",
]
