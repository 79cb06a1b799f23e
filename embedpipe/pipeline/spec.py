"""The pipeline file: pydantic models of the YAML, validated with messages naming stage and key.

A pipeline file looks like::

    name: quickstart
    seed: 0
    datasets:
      reviews: {source: "builtin:rotten_tomatoes", limit: 3000}
    stages:
      features:
        kind: encode
        dataset: reviews
        params: {backbone: minilm}
      logreg:
        kind: train
        inputs: {train: features}
        params: {head: logreg, options: {C: 1.0}}

An optional top-level ``executor:`` (``local``, ``ray`` or a mapping such as ``{name: ray,
num_workers: 4}``) runs encode stages that set ``n_shards`` / ``shard_size`` as shards on that
executor (see :mod:`embedpipe.pipeline.executor`).

Every error is a :class:`~embedpipe.errors.ConfigError` naming the file, the line, the stage and
the key, and saying what is allowed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError, NotFoundError
from .kinds import KindInfo, Params, kind_info, kind_names

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class DatasetSpec(BaseModel):
    """A named dataset: an :func:`embedpipe.data.open_source` spec plus its options.

    In YAML either a string (``reviews: builtin:rotten_tomatoes``) or a mapping with ``source``
    and any options of ``open_source`` (``limit``, ``split``, ``seed``, ``text_column``...).
    Relative paths are relative to the pipeline file's folder.
    """

    model_config = ConfigDict(extra="allow", frozen=True)

    source: str

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, **self.options}


class StageSpec(BaseModel):
    """One stage as written in the file (parameters are checked per kind afterwards)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    inputs: dict[str, str | list[str]] = Field(default_factory=dict)
    dataset: str | None = None
    datasets: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    description: str = ""
    # parameter -> values: one stage per combination (see embedpipe.pipeline.matrix)
    matrix: dict[str, Any] = Field(default_factory=dict)


class PipelineSpec(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = None
    description: str = ""
    seed: int = 0
    cache: str | None = None
    runs_dir: str | None = None
    # A name (local, ray, none) or a mapping; checked by embedpipe.pipeline.executor when a
    # run starts (the executor settings live with the executors, which import torch).
    executor: Any = None
    datasets: dict[str, DatasetSpec] = Field(default_factory=dict)
    stages: dict[str, StageSpec]

    @field_validator("datasets", mode="before")
    @classmethod
    def _short_datasets(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: {"source": d} if isinstance(d, str) else d for k, d in v.items()}
        return v


class Stage:
    """A validated stage: its kind, typed parameters, inputs by role and datasets by role."""

    def __init__(
        self,
        name: str,
        spec: StageSpec,
        info: KindInfo,
        params: Params,
        inputs: dict[str, list[str]],
        datasets: dict[str, str],
        seed: int,
        base: str | None = None,
        axes: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.base = base or name  # the stage as written (a matrix stage's branches share it)
        self.axes = dict(axes or {})  # matrix coordinates: {"layer": "features.14", ...}
        self.spec = spec
        self.info = info
        self.kind = info.name
        self.params = params
        self.inputs = inputs  # role -> stage names (a one-stage role holds one name)
        self.datasets = datasets  # role -> dataset name
        self.seed = seed

    @property
    def upstream(self) -> list[str]:
        """Names of the stages this one reads, in role order, without repeats."""
        out: list[str] = []
        for names in self.inputs.values():
            out.extend(n for n in names if n not in out)
        return out

    def input(self, role: str) -> str | None:
        names = self.inputs.get(role) or []
        return names[0] if names else None

    def __repr__(self) -> str:
        return f"Stage({self.name!r}, kind={self.kind!r})"


# ---- YAML with line numbers ------------------------------------------------------------------
def _node_lines(node: yaml.Node) -> Any:
    """A tree mirroring the YAML document whose leaves are line numbers (1-based)."""
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        return (
            line,
            {str(k.value): (k.start_mark.line + 1, _node_lines(v)) for k, v in node.value},
        )
    if isinstance(node, yaml.SequenceNode):
        return (line, [_node_lines(v) for v in node.value])
    return (line, None)


class _Lines:
    def __init__(self, tree: Any) -> None:
        self.tree = tree

    def of(self, loc: tuple[Any, ...]) -> int | None:
        node = self.tree
        line = node[0] if node else None
        for part in loc:
            if node is None:
                break
            children = node[1]
            if isinstance(children, dict) and str(part) in children:
                line, node = children[str(part)]
            elif isinstance(children, list) and isinstance(part, int) and part < len(children):
                node = children[part]
                line = node[0]
            else:
                break
        return line


#: The largest pipeline file read (it declares datasets and stages, not data): 1 MiB.
MAX_PIPELINE_BYTES = 1 << 20
#: The most YAML nodes a pipeline file may expand to, aliases (``*name``) counted each time
#: they are used: a few aliases to aliases (an "alias bomb") would otherwise expand to billions.
MAX_YAML_NODES = 100_000


def _check_nodes(path: Path, root: yaml.Node) -> None:
    """Refuse a document whose aliases expand past :data:`MAX_YAML_NODES`, and a mapping with
    a repeated key (YAML keeps the last one silently: two stages of one name, one lost)."""
    sizes: dict[int, int] = {}

    def expanded(node: yaml.Node) -> int:  # memoised: linear in the document, not its expansion
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 1  # (a recursive alias counts once)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    line = k.start_mark.line + 1
                    if k.value in seen:
                        raise ConfigError(
                            f"{path} line {line}: key {k.value!r} appears twice (also line "
                            f"{seen[k.value]}); YAML would keep only the last one. Rename or "
                            "remove one of them."
                        )
                    seen[k.value] = line
                total += expanded(k) + expanded(v)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(expanded(v) for v in node.value)
        sizes[id(node)] = total
        return total

    n = expanded(root)
    if n > MAX_YAML_NODES:
        raise ConfigError(
            f"{path}: the file expands to {n:,} YAML nodes through its aliases (*name), more "
            f"than the {MAX_YAML_NODES:,} a pipeline file may hold; write the repeated parts "
            "out or use a matrix."
        )


def read_yaml(path: Path) -> tuple[dict[str, Any], _Lines]:
    """Parse a pipeline file; a syntax error names the file and line. Files over
    :data:`MAX_PIPELINE_BYTES`, aliases expanding past :data:`MAX_YAML_NODES` and repeated
    keys are refused."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ConfigError(f"pipeline file {str(path)!r} does not exist.") from None
    if size > MAX_PIPELINE_BYTES:
        raise ConfigError(
            f"pipeline file {str(path)!r} is {size / 2**20:.1f} MiB; a pipeline file is at most "
            f"{MAX_PIPELINE_BYTES >> 20} MiB (it names datasets and stages; keep data in the "
            "dataset files it points to)."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"pipeline file {str(path)!r} does not exist.") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}).") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is not None:
            _check_nodes(path, node)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: a pipeline file is a mapping with 'datasets' and 'stages'; found {type(data).__name__}."
        )
    return data, _Lines(_node_lines(node) if node is not None else None)


# ---- validation ------------------------------------------------------------------------------
def _where(origin: str, lines: _Lines | None, loc: tuple[Any, ...]) -> str:
    line = lines.of(loc) if lines is not None else None
    return f"{origin}{f' line {line}' if line else ''}"


def _dotted(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _fields_of(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _explain(
    e: ValidationError,
    model: type[BaseModel],
    prefix: tuple[Any, ...],
    origin: str,
    lines: _Lines | None,
    what: str,
) -> ConfigError:
    msgs = []
    for err in e.errors():
        loc = prefix + tuple(err["loc"])
        key = _dotted(tuple(err["loc"])) or "(top)"
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {key!r}; allowed: {', '.join(_fields_of(model))}"
        elif err["type"] == "missing":
            msg = f"missing key {key!r}"
        elif isinstance(err.get("input"), (str, int, float, bool, type(None))):
            msg = f"key {key!r}: {err.get('input')!r} is not allowed; {_allowed(err['msg'])}"
        else:
            msg = f"key {key!r}: {err['msg']}"
        msgs.append(f"{_where(origin, lines, loc)}: {what}: {msg}")
    return ConfigError("\n".join(msgs))


def _allowed(msg: str) -> str:
    """pydantic's "Input should be ..." as "it should be ..."."""
    return msg.replace("Input should", "it should", 1) if msg.startswith("Input should") else msg


def _check_name(
    name: str, what: str, origin: str, lines: _Lines | None, loc: tuple[Any, ...]
) -> None:
    if not NAME_RE.match(name):
        raise ConfigError(
            f"{_where(origin, lines, loc)}: {what} name {name!r} may hold only letters, digits, "
            "'_', '.' and '-' (it names cache and report files)."
        )


def build_stages(
    spec: PipelineSpec, origin: str = "pipeline", lines: _Lines | None = None
) -> dict[str, Stage]:
    """Check every stage against its kind and the rest of the pipeline; return them typed.

    Raises
    ------
    ConfigError
        For an unknown parameter, a missing or unknown input or dataset, an input of the wrong
        kind, or a cycle. The message names the stage and the key.
    """
    if not spec.stages:
        raise ConfigError(f"{_where(origin, lines, ('stages',))}: the pipeline has no stages.")
    if spec.name is not None:
        _check_name(spec.name, "pipeline", origin, lines, ("name",))
    for name in spec.datasets:
        _check_name(name, "dataset", origin, lines, ("datasets", name))
    infos: dict[str, KindInfo] = {}
    for name, st in spec.stages.items():
        _check_name(name, "stage", origin, lines, ("stages", name))
        try:
            infos[name] = kind_info(st.kind)
        except NotFoundError as e:
            where = _where(origin, lines, ("stages", name, "kind"))
            raise ConfigError(f"{where}: stage {name!r}: {e}") from None
    from .matrix import expand

    branches = expand(
        spec.stages,
        lambda n: infos[n].inputs if n in infos else None,
        lambda loc: _where(origin, lines, loc),
    )
    kinds_of = {b.name: infos[b.base] for b in branches.values()}
    stages: dict[str, Stage] = {}
    for name, branch in branches.items():
        st = branch.spec
        info = infos[branch.base]
        what = f"stage {name!r} ({st.kind})"
        base = ("stages", branch.base)
        try:
            params = info.params.model_validate(st.params)
        except ValidationError as e:
            raise _explain(e, info.params, (*base, "params"), origin, lines, what) from None
        # inputs: known roles, right kinds, one or many
        inputs: dict[str, list[str]] = {}
        for role, ref in st.inputs.items():
            loc: tuple[Any, ...] = (*base, "inputs", role)
            if role not in info.inputs:
                allowed = ", ".join(info.inputs) or "none (this kind reads no other stage)"
                raise ConfigError(
                    f"{_where(origin, lines, loc)}: {what}: unknown input {role!r}; inputs of {st.kind}: {allowed}."
                )
            r = info.inputs[role]
            names = [ref] if isinstance(ref, str) else list(ref)
            if not r.many and len(names) != 1:
                raise ConfigError(
                    f"{_where(origin, lines, loc)}: {what}: input {role!r} takes one stage, got {len(names)}."
                )
            if not names:
                raise ConfigError(
                    f"{_where(origin, lines, loc)}: {what}: input {role!r} lists no stage."
                )
            for ref_name in names:
                if ref_name not in kinds_of:
                    raise ConfigError(
                        f"{_where(origin, lines, loc)}: {what}: input {role!r} names {ref_name!r}, which is "
                        f"not a stage; stages: {', '.join(spec.stages)}."
                    )
                if ref_name in (name, branch.base):
                    raise ConfigError(
                        f"{_where(origin, lines, loc)}: {what}: input {role!r} names the stage itself (a cycle)."
                    )
                ref_info = kinds_of[ref_name]
                if not r.accepts(ref_info):
                    ok = [k for k in kind_names() if r.accepts(kind_info(k))]
                    raise ConfigError(
                        f"{_where(origin, lines, loc)}: {what}: input {role!r} is {ref_name!r}, a {ref_info.name} stage; "
                        f"it must be a {' or '.join(ok or r.kinds)} stage."
                    )
            inputs[role] = names
        for role, r in info.inputs.items():
            if r.required and role not in inputs:
                raise ConfigError(
                    f"{_where(origin, lines, base)}: {what}: missing input {role!r} (key 'inputs.{role}': "
                    f"the name of a {' or '.join(r.kinds)} stage)."
                )
        # datasets: `dataset: X` is the shorthand of a kind with a single dataset role
        datasets = dict(st.datasets)
        if st.dataset is not None:
            if len(info.datasets) != 1:
                allowed = ", ".join(info.datasets) or "none"
                raise ConfigError(
                    f"{_where(origin, lines, (*base, 'dataset'))}: {what}: key 'dataset' is for kinds with one "
                    f"dataset; {st.kind} takes {'datasets: {' + allowed + '}' if info.datasets else 'no dataset'}."
                )
            datasets[next(iter(info.datasets))] = st.dataset
        for role, ds in datasets.items():
            loc = (
                *base,
                "dataset" if st.dataset is not None and role not in st.datasets else "datasets",
            )
            if role not in info.datasets:
                allowed = ", ".join(info.datasets) or "none"
                raise ConfigError(
                    f"{_where(origin, lines, loc)}: {what}: unknown dataset role {role!r}; {st.kind} takes: {allowed}."
                )
            if ds not in spec.datasets:
                known = (
                    ", ".join(spec.datasets)
                    or "none declared (add a top-level 'datasets:' mapping)"
                )
                raise ConfigError(
                    f"{_where(origin, lines, loc)}: {what}: dataset {ds!r} is not declared; datasets: {known}."
                )
        for role, required in info.datasets.items():
            if required and role not in datasets:
                key = "dataset" if len(info.datasets) == 1 else f"datasets.{role}"
                raise ConfigError(
                    f"{_where(origin, lines, base)}: {what}: missing key {key!r} (a declared dataset)."
                )
        seed = spec.seed if st.seed is None else st.seed
        stages[name] = Stage(
            name, st, info, params, inputs, datasets, seed, branch.base, branch.axes
        )
    from .graph import check_acyclic

    check_acyclic(stages, origin, lambda loc: _where(origin, lines, loc))
    return stages


def parse_spec(
    data: dict[str, Any], origin: str = "pipeline", lines: _Lines | None = None
) -> PipelineSpec:
    """Validate the top level of a pipeline mapping."""
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as e:
        # name the stage / dataset, then the key inside it
        msgs = []
        for err in e.errors():
            loc = tuple(err["loc"])
            if len(loc) >= 2 and loc[0] in ("stages", "datasets"):
                owner = f"{'stage' if loc[0] == 'stages' else 'dataset'} {loc[1]!r}"
                key = _dotted(loc[2:]) or "(itself)"
                model: type[BaseModel] = StageSpec if loc[0] == "stages" else DatasetSpec
            else:
                owner, key, model = "pipeline", _dotted(loc), PipelineSpec
            loc_for_line = loc[:3] if loc and loc[0] in ("stages", "datasets") else loc
            if err["type"] == "extra_forbidden":
                msg = f"unknown key {key!r}; allowed: {', '.join(_fields_of(model))}"
            elif err["type"] == "missing":
                msg = f"missing key {key!r}"
            else:
                msg = f"key {key!r}: {err['msg']}"
            msgs.append(f"{_where(origin, lines, loc_for_line)}: {owner}: {msg}")
        raise ConfigError("\n".join(dict.fromkeys(msgs))) from None
