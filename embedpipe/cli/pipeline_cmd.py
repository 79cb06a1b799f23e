"""``embedpipe run``, ``status``, ``dag`` and ``gc``: pipelines from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..units import format_bytes
from ._common import (
    ExecutorWorkersOption,
    QuietOption,
    RayAddressOption,
    echo_wrapped,
    wrap_command,
)

if TYPE_CHECKING:
    from ..pipeline import StageRun

_CACHE_HELP = "Cache folder (default: the file's 'cache:', else $EMBEDPIPE_CACHE, else ./cache)."


def run_command(
    file: Annotated[Path, typer.Argument(help="A pipeline YAML file.")],
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run only this stage and its upstream (repeatable)."),
    ] = None,
    force: Annotated[
        list[str] | None,
        typer.Option("--force", help="Re-run this stage even if cached (repeatable)."),
    ] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help=_CACHE_HELP)] = None,
    runs_dir: Annotated[
        Path | None,
        typer.Option("--runs-dir", help="Where manifests and reports go (default ./runs)."),
    ] = None,
    quiet: QuietOption = False,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="Override the file's 'executor:': local, ray, or none (one-file encodes). "
            "With an executor, encode stages write shards (n_shards/shard_size) on it.",
        ),
    ] = None,
    ray_address: RayAddressOption = None,
    executor_workers: ExecutorWorkersOption = None,
    paths: Annotated[
        bool,
        typer.Option(
            "--paths", help="End with each stage's output path and the commands to try next."
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Run nothing: forecast the stages to build (same as `embedpipe plan FILE`).",
        ),
    ] = False,
    sizes: Annotated[
        str,
        typer.Option("--sizes", help="With --dry-run: items per dataset of the calibration runs."),
    ] = "32,96",
) -> None:
    """Run a pipeline: stages in dependency order, recomputing only what changed.

    Example: embedpipe run pipelines/quickstart.yaml --paths
    """
    from ..executors import executor_flags
    from ..pipeline import run_pipeline

    if dry_run:
        plan_command(file, cache=cache, sizes=sizes)
        return

    def on_event(event: str, run: StageRun | None, message: str) -> None:
        if run is None:
            return
        if event == "start":
            typer.echo(f"  run    {run.name} ({run.kind}) ...")
        elif event == "wait":
            typer.echo(f"  wait   {message}")
        elif event == "done":
            label = {"hit": "cached", "miss": "done", "forced": "forced"}[run.status]
            typer.echo(f"  {label:<7}{run.name} ({run.kind}) {run.key[:12]}  {run.seconds:.2f}s")
        elif event == "failed":
            typer.echo(f"  FAILED {run.name} ({run.kind}): {message}", err=True)

    result = run_pipeline(
        file,
        cache=cache,
        only=only or (),
        force=force or (),
        runs_dir=runs_dir,
        progress=not quiet,
        on_event=on_event,
        executor=executor_flags(executor, ray_address, executor_workers),
    )
    n = len(result.stages)
    typer.echo(
        f"{result.pipeline}: {n} stage{'s' if n != 1 else ''}, {len(result.hits)} cached, "
        f"{len(result.executed)} run, in {result.seconds:.2f}s"
    )
    typer.echo(f"manifest: {result.manifest_path}")
    for page in result.reports:
        typer.echo(f"report:   {page}")
    if paths:
        from ..pipeline.runner import next_steps

        _echo_paths([(r.name, r.kind, r.output_path) for r in result.stages.values()])
        steps = next_steps(result)
        if steps:
            typer.echo("next:")
            for cmd in steps:
                typer.echo(wrap_command(cmd, indent="  "))


def _echo_paths(rows: list[tuple[str, str, Path | None]]) -> None:
    shown = [(n, k, p) for n, k, p in rows if p is not None]
    if not shown:
        return
    typer.echo("outputs:")
    w = max(len(n) for n, _, _ in shown)
    kw = max(len(k) for _, k, _ in shown)
    import shutil

    cols = shutil.get_terminal_size((80, 24)).columns
    for n, k, p in shown:
        line = f"  {n:<{w}}  {k:<{kw}}  {p}"
        if len(line) > cols:  # the path on a line of its own (never broken)
            line = f"  {n:<{w}}  {k}\n      {p}"
        typer.echo(line)


def status_command(
    file: Annotated[Path, typer.Argument(help="A pipeline YAML file.")],
    cache: Annotated[Path | None, typer.Option("--cache", help=_CACHE_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    paths: Annotated[
        bool, typer.Option("--paths", help="Also list each cached stage's output path.")
    ] = False,
) -> None:
    """Show which stages are cached and which are stale, and why (matrix stages: each branch).

    Example: embedpipe status pipelines/quickstart.yaml --paths
    """
    from ..pipeline import pipeline_status

    rows = pipeline_status(file, cache=cache)
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in rows], indent=2))
        return
    w = max(len(r.name) for r in rows)
    kw = max(len(r.kind) for r in rows)
    for r in rows:
        head = f"{r.name:<{w}}  {r.kind:<{kw}}  {r.state:<6}  {r.key[:12]}"
        typer.echo(head + (f"  {r.reasons[0]}" if r.reasons else ""))
        for extra in r.reasons[1:]:
            typer.echo(" " * (len(head) + 2) + extra)
    stale = sum(r.state == "stale" for r in rows)
    typer.echo(f"{len(rows) - stale} cached, {stale} stale")
    if paths:
        _echo_paths([(r.name, r.kind, r.output) for r in rows])


def plan_command(
    file: Annotated[Path, typer.Argument(help="A pipeline YAML file.")],
    cache: Annotated[Path | None, typer.Option("--cache", help=_CACHE_HELP)] = None,
    sizes: Annotated[
        str, typer.Option("--sizes", help="Items per dataset of the two calibration runs.")
    ] = "32,96",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Forecast a run's wall time, disk and peak memory before it starts.

    Each stage not cached runs on calibration samples of its real data on this machine
    (cached stages forecast zero); the next `run` records the forecast next to the actual
    figures in its manifest and report.

    Example: embedpipe plan pipelines/layers.yaml
    """
    from ..errors import ConfigError
    from ..pipeline.forecast import forecast_pipeline, format_forecast

    try:
        a, b = (int(v) for v in sizes.split(","))
    except ValueError:
        raise ConfigError(f"--sizes {sizes!r}: give two item counts such as 32,96.") from None
    if not 0 < a < b:
        raise ConfigError(f"--sizes {sizes!r}: give two increasing positive counts such as 32,96.")
    fc = forecast_pipeline(file, cache=cache, sizes=(a, b))
    if as_json:
        typer.echo(json.dumps(fc.to_dict(), indent=2))
        return
    typer.echo(format_forecast(fc))
    if fc.path is not None:
        typer.echo(f"kept in {fc.path} (the next run's manifest compares it with the actual run)")


def dag_command(
    file: Annotated[Path, typer.Argument(help="A pipeline YAML file.")],
    dot: Annotated[bool, typer.Option("--dot", help="Graphviz dot instead of text.")] = False,
) -> None:
    """Print the pipeline's graph."""
    from ..pipeline import load_pipeline, render_dag

    typer.echo(render_dag(load_pipeline(file), "dot" if dot else "text"))


def gc_command(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Keep what these pipelines reference (default: every pipeline recorded in the cache)."
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            "--cache",
            help="Cache folder (default: the 'cache:' of the files given, else $EMBEDPIPE_CACHE, "
            "else ./cache).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")
    ] = False,
) -> None:
    """Remove cache entries that no pipeline references."""
    from ..pipeline import collect_garbage

    result = collect_garbage(cache, files or (), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for item in result.removed:
        what = "" if item.what == "entry" else f" ({item.what})"
        typer.echo(f"  {verb} {item.kind}/{item.key}{what}  {format_bytes(item.bytes)}")
    if result.referenced_by:
        kept = f"kept {result.kept} referenced by {', '.join(result.referenced_by)}"
    else:
        kept = "no pipeline file given or found: pass the pipeline files whose entries to keep"
    typer.echo(f"{verb} {len(result.removed)} entries ({format_bytes(result.bytes)}); {kept}")


def examples_command(
    folder: Annotated[
        Path, typer.Argument(help="Folder to write the example pipelines into.")
    ] = Path("pipelines"),
    overwrite: Annotated[
        bool, typer.Option(help="Replace example files that were changed in that folder.")
    ] = False,
) -> None:
    """Write the example pipelines shipped with embedpipe (quickstart, images, ...) to a folder.

    Example: embedpipe examples && embedpipe run pipelines/quickstart.yaml
    """
    from ..pipeline.examples import write_examples

    paths = write_examples(folder, overwrite=overwrite)
    echo_wrapped(
        f"wrote {len(paths)} example pipelines to {folder}/: " + ", ".join(p.name for p in paths)
    )
    quick = next((p for p in paths if p.name == "quickstart.yaml"), paths[0] if paths else None)
    if quick is not None:
        typer.echo(f"next: embedpipe run {quick}")


def register(app: typer.Typer) -> None:
    """Add ``run``, ``status``, ``dag``, ``gc`` and ``plan`` to the ``embedpipe`` app."""
    app.command("run")(run_command)
    app.command("status")(status_command)
    app.command("dag")(dag_command)
    app.command("gc")(gc_command)
    app.command("plan")(plan_command)
    app.command("examples")(examples_command)
