"""One way for every benchmark to publish a table: Markdown on stdout, JSON + Markdown on disk.

Usage from a benchmark script (run as ``python benchmarks/NAME.py``, so this folder is on
``sys.path``)::

    from _report import emit

    emit(
        "encode",                                   # -> benchmarks/results/encode.{json,md}
        "Encode throughput (items/s), batch 64",
        ["backbone", "items/s", "ratio"],
        [{"backbone": "MiniLM", "items/s": 412.3, "ratio": 1.21}],
        notes=["ratios are measured within one run"],
    )

Each result file records the date, the machine (CPU model, cores, the CPU flags that matter
for inference such as ``avx512_bf16`` and ``amx_bf16``, memory, the load average), library
versions, the git commit and the command line. ``benchmarks/readme_tables.py`` renders the
README's benchmark tables from these files with :func:`markdown_table`, the same function
that writes the ``.md`` file, so the README cannot drift from a run.

Where the files go: ``benchmarks/results/`` (tracked by git: the README quotes these files and
a test compares the README with them, so they must be committed; the git-ignored
``benchmarks/out/`` would leave a fresh checkout without them). Set ``EMBEDPIPE_BENCH_RESULTS``
to another folder (or pass ``out_dir``) for smoke runs that must not replace the
committed figures.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS_DIR = HERE / "results"
ENV_RESULTS = "EMBEDPIPE_BENCH_RESULTS"

#: CPU flags recorded with every result (what decides bf16 / int8 speed on x86 CPUs).
CPU_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

#: Distributions whose versions are recorded (those installed).
PACKAGES = (
    "embedpipe",
    "torch",
    "torchvision",
    "transformers",
    "tokenizers",
    "sentence-transformers",
    "onnxruntime",
    "onnx",
    "openvino",
    "optimum",
    "optimum-intel",
    "timm",
    "open_clip_torch",
    "faiss-cpu",
    "scikit-learn",
    "numpy",
    "h5py",
    "ray",
)


def results_dir(override: str | Path | None = None) -> Path:
    """The folder result files are written to and read from (see the module docstring)."""
    if override is not None:
        return Path(override)
    env = os.environ.get(ENV_RESULTS)
    return Path(env) if env else RESULTS_DIR


def _cpuinfo() -> dict[str, Any]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, val = line.partition(":")
        key = key.strip()
        if key == "model name" and model in ("", platform.machine(), platform.processor()):
            model = val.strip()
        elif key == "flags" and not flags:
            flags = set(val.split())
    return {"cpu": model, "flags": [f for f in CPU_FLAGS if f in flags]}


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict[str, Any]:
    """CPU model, logical cores (and those this process may use), CPU flags, memory, load."""
    info = _cpuinfo()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "cpu": info["cpu"],
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "flags": info["flags"],
        "memory_gb": _memory_gb(),
        "load_avg_1_5_15": load,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def gpu_info() -> dict[str, Any] | None:
    """The CUDA device's name, memory and driver when torch is imported and sees one, else None."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    p = torch.cuda.get_device_properties(0)
    return {
        "name": p.name,
        "memory_gb": round(p.total_memory / 1024**3, 1),
        "count": torch.cuda.device_count(),
        "cuda": torch.version.cuda,
    }


def versions() -> dict[str, str]:
    """Installed versions of the libraries a benchmark's numbers depend on."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    """``HEAD``'s short hash, with ``+dirty`` when tracked files differ from it; None outside git."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def cell(value: Any) -> str:
    """How a value is shown in a table: None -> ``–``; floats by size; strings as they are.

    A benchmark that needs a fixed number of decimals (a cosine such as 0.99987) passes the
    value already formatted as a string.
    """
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value != value:  # NaN
            return "–"
        a = abs(value)
        if a >= 1000:
            return f"{value:,.0f}"
        if a >= 100:
            return f"{value:.1f}"
        if a >= 10:
            return f"{value:.1f}"
        if a >= 0.1 or a == 0:
            return f"{value:.2f}"
        return f"{value:.2g}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(columns: Sequence[str], rows: Sequence[Mapping[str, Any]]) -> str:
    """A GitHub Markdown table; a row lacking a column shows ``–`` there."""
    lines = [
        "| " + " | ".join(cell(c) for c in columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for r in rows:
        lines.append("| " + " | ".join(cell(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def provenance_line(result: Mapping[str, Any]) -> str:
    """One line saying when, where and on what code a result was measured."""
    m = result.get("machine", {})
    flags = ", ".join(m.get("flags") or []) or "none of " + "/".join(CPU_FLAGS[:3])
    load = m.get("load_avg_1_5_15")
    parts = [
        f"Measured {result.get('date', '?')}",
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores ({flags})",
    ]
    if result.get("gpu"):
        g = result["gpu"]
        parts.append(f"GPU {g['name']} ({g['memory_gb']} GB)")
    if load:
        parts.append(f"load {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} (1/5/15 min)")
    v = result.get("versions", {})
    libs = ", ".join(f"{k} {v[k]}" for k in ("torch", "transformers") if k in v)
    if libs:
        parts.append(libs)
    if result.get("commit"):
        parts.append(f"commit {result['commit']}")
    return "; ".join(parts) + "."


def render(result: Mapping[str, Any], heading: bool = True) -> str:
    """The Markdown of one result: title, table, notes, provenance (what the .md file holds)."""
    out = []
    if heading:
        out += [f"**{result['title']}**", ""]
    out.append(markdown_table(result["columns"], result["rows"]))
    notes = list(result.get("notes") or [])
    if notes:
        out.append("")
        out += [f"- {n}" for n in notes]
    out += ["", f"<sub>{provenance_line(result)}</sub>"]
    return "\n".join(out)


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy / torch scalars
        return v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def emit(
    name: str,
    title: str,
    columns: list[str],
    rows: list[dict],
    notes: Sequence[str] = (),
    *,
    extra: Mapping[str, Any] | None = None,
    out_dir: str | Path | None = None,
) -> Path:
    """Print the table as Markdown and write ``<results>/<name>.json`` and ``<name>.md``.

    ``name`` is a file stem (``encode``, ``heads-fit``); ``columns`` orders the keys of each
    row; values are numbers, strings, booleans or None. ``extra`` holds anything else worth
    keeping (raw timings, settings). Returns the JSON file's path.
    """
    if not name or any(c in name for c in "/\\ ") or name.startswith("."):
        raise ValueError(f"result name {name!r}: use a plain file stem such as 'encode'")
    unknown = sorted({k for r in rows for k in r} - set(columns))
    if unknown:
        raise ValueError(f"result {name!r}: row keys {unknown} are not in columns; add them")
    result: dict[str, Any] = {
        "name": name,
        "title": title,
        "columns": list(columns),
        "rows": _jsonable(rows),
        "notes": list(notes),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(),
        "gpu": gpu_info(),
        "versions": versions(),
        "commit": git_commit(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "",
    }
    if extra:
        result["extra"] = _jsonable(extra)
    text = render(result)
    print(f"\n{text}\n", flush=True)
    out = results_dir(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)
    (out / f"{name}.md").write_text(text + "\n")
    return path


def load(name: str, out_dir: str | Path | None = None) -> dict[str, Any]:
    """The stored result ``name`` (as written by :func:`emit`)."""
    path = results_dir(out_dir) / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no benchmark result {name!r}; run its benchmark (make bench) first"
        )
    return json.loads(path.read_text())
