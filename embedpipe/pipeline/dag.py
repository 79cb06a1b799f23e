"""``dag``: the pipeline graph as text (an indented layer listing, or Graphviz dot)."""

from __future__ import annotations

from typing import Literal

from .graph import depth
from .pipeline import Pipeline


def _summary(pipeline: Pipeline, name: str) -> str:
    st = pipeline.stages[name]
    p = st.params
    if st.kind == "encode" or st.kind == "finetune":
        return f"backbone={p.backbone}"  # type: ignore[attr-defined]
    if st.kind == "train":
        opts = ", ".join(f"{k}={v}" for k, v in p.options.items())  # type: ignore[attr-defined]
        return f"head={p.head}{f' ({opts})' if opts else ''}"  # type: ignore[attr-defined]
    if st.kind == "index":
        return f"type={p.type}, metric={p.metric}"  # type: ignore[attr-defined]
    return ""


def render_dag(pipeline: Pipeline, fmt: Literal["text", "dot"] = "text") -> str:
    """The graph of ``pipeline`` as text.

    ``text``: one line per stage in dependency order, indented by depth, with its kind, main
    parameter and what it reads (``<-``). ``dot``: a Graphviz digraph (``dot -Tsvg``).

    Examples
    --------
    >>> print(render_dag(load_pipeline("pipelines/quickstart.yaml")))  # doctest: +SKIP
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
