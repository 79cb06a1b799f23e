"""``dag``: the pipeline graph as text (an indented layer listing, or Graphviz dot)."""

from __future__ import annotations

from typing import Literal

from .graph import depth
from .matrix import short_value
from .pipeline import Pipeline


def _summary(pipeline: Pipeline, name: str) -> str:
    st = pipeline.stages[name]
    return st.info.describe(st.params) if st.info.describe else ""


def matrix_lines(pipeline: Pipeline) -> list[str]:
    """One line per matrix stage: its axes and how many branches it expanded into."""
    groups: dict[str, list[str]] = {}
    for n, st in pipeline.stages.items():
        if st.axes:
            groups.setdefault(st.base, []).append(n)
    out = []
    for base, names in groups.items():
        axes: dict[str, list[str]] = {}
        for n in names:
            for k, v in pipeline.stages[n].axes.items():
                vals = axes.setdefault(k, [])
                if short_value(v) not in vals:
                    vals.append(short_value(v))
        shown = " x ".join(f"{k} ({len(v)}: {', '.join(v)})" for k, v in axes.items())
        out.append(f"  matrix {base}: {len(names)} branches over {shown}")
    return out


def render_dag(pipeline: Pipeline, fmt: Literal["text", "dot"] = "text") -> str:
    """The graph of ``pipeline`` as text.

    ``text``: one line per stage in dependency order, indented by depth, with its kind, main
    parameter and what it reads (``<-``); a matrix stage shows each of its branches, and a
    ``matrix`` line per stage says over which values it expanded. ``dot``: a Graphviz digraph
    (``dot -Tsvg``).

    Examples
    --------
    >>> p = Pipeline("sweep")
    >>> p.dataset("d", "builtin:digits")
    'd'
    >>> p.stage("embed", "encode", dataset="d", backbone="torchvision:mobilenet_v2",
    ...         matrix={"layer": ["features.7", "features.14"]})
    'embed'
    >>> p.stage("head", "train", inputs={"train": "embed"}, head="logreg")
    'head'
    >>> print(render_dag(p))  # doctest: +NORMALIZE_WHITESPACE
    pipeline sweep: 4 stages, 1 datasets
      dataset d: builtin:digits
      matrix embed: 2 branches over layer (2: features.7, features.14)
      matrix head: 2 branches over layer (2: features.7, features.14)
      embed[layer=features.7]     [encode]  backbone=torchvision:mobilenet_v2, layer=features.7  <- data=dataset:d
      embed[layer=features.14]    [encode]  backbone=torchvision:mobilenet_v2, layer=features.14  <- data=dataset:d
        head[layer=features.7]    [train]   head=logreg  <- train=embed[layer=features.7]
        head[layer=features.14]   [train]   head=logreg  <- train=embed[layer=features.14]
    """
    stages = pipeline.stages
    levels = depth(stages)
    order = pipeline.order()
    if fmt == "dot":
        lines = [
            f'digraph "{pipeline.name}" {{',
            "  rankdir=LR;",
            "  node [shape=box, fontname=Helvetica];",
        ]
        for ds in pipeline.spec.datasets:
            lines.append(f'  "ds:{ds}" [label="{ds}\\n(dataset)", shape=cylinder];')
        for n in order:
            lines.append(f'  "{n}" [label="{n}\\n[{stages[n].kind}]"];')
        for n in order:
            st = stages[n]
            for role, ups in st.inputs.items():
                for u in ups:
                    lines.append(f'  "{u}" -> "{n}" [label="{role}"];')
            for role, ds in st.datasets.items():
                lines.append(f'  "ds:{ds}" -> "{n}" [label="{role}"];')
        lines.append("}")
        return "\n".join(lines)
    width = max(len(n) + 2 * levels[n] for n in order)
    kw = max(len(stages[n].kind) for n in order) + 2
    lines = [
        f"pipeline {pipeline.name}: {len(order)} stages, {len(pipeline.spec.datasets)} datasets"
    ]
    for ds, h in pipeline.datasets.items():
        lines.append(f"  dataset {ds}: {h.description}")
    lines += matrix_lines(pipeline)
    for n in order:
        st = stages[n]
        reads = [f"{role}={','.join(ups)}" for role, ups in st.inputs.items()]
        reads += [f"{role}=dataset:{ds}" for role, ds in st.datasets.items()]
        label = ("  " * levels[n] + n).ljust(width)
        summary = _summary(pipeline, n)
        line = f"  {label}  {('[' + st.kind + ']').ljust(kw)}"
        if summary:
            line += f"  {summary}"
        if reads:
            line += f"  <- {'; '.join(reads)}"
        lines.append(line.rstrip())
    return "\n".join(lines)
