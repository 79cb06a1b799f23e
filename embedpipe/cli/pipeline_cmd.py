"""``embedpipe run``, ``status``, ``dag`` and ``gc``: pipelines from the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ..pipeline import StageRun

_CACHE_HELP = "Cache folder (default: the file's 'cache:', else $EMBEDPIPE_CACHE, else ./cache)."


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def _executor_override(
    name: str | None, address: str | None, workers: int | None
) -> dict[str, object] | None:
    """The executor keys the flags set (merged over the file's ``executor:`` by the run)."""
    over = {"name": name, "address": address, "num_workers": workers}
    return {k: v for k, v in over.items() if v is not None} or None


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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            help="Override the file's 'executor:': local, ray, or none (one-file encodes). "
            "With an executor, encode stages write shards (n_shards/shard_size) on it.",
        ),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Ray cluster to join: auto (started by `ray start` here) or ray://HOST:10001. "
            "Implies --executor ray if neither the flag nor the file names one.",
        ),
    ] = None,
    executor_workers: Annotated[
        int | None,
        typer.Option(
            "--executor-workers", min=1, help="Executor workers (Ray actors, one model each)."
        ),
    ] = None,
) -> None:
    """Run a pipeline: stages in dependency order, recomputing only what changed."""
    from ..pipeline import run_pipeline

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
        executor=_executor_override(executor, ray_address, executor_workers),
    )
    n = len(result.stages)
    typer.echo(
        f"{result.pipeline}: {n} stage{'s' if n != 1 else ''}, {len(result.hits)} cached, "
        f"{len(result.executed)} run, in {result.seconds:.2f}s"
    )
    typer.echo(f"manifest: {result.manifest_path}")
    for page in result.reports:
        typer.echo(f"report:   {page}")


def status_command(
    file: Annotated[Path, typer.Argument(help="A pipeline YAML file.")],
    cache: Annotated[Path | None, typer.Option("--cache", help=_CACHE_HELP)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show which stages are cached and which are stale, and why."""
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
        typer.Option("--cache", help="Cache folder (default: $EMBEDPIPE_CACHE, else ./cache)."),
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
        typer.echo(f"  {verb} {item.kind}/{item.key}{what}  {_size(item.bytes)}")
    refs = ", ".join(result.referenced_by) or "no pipeline"
    typer.echo(
        f"{verb} {len(result.removed)} entries ({_size(result.bytes)}); kept {result.kept} referenced by {refs}"
    )


def register(app: typer.Typer) -> None:
    """Add ``run``, ``status``, ``dag`` and ``gc`` to the ``embedpipe`` app."""
    app.command("run")(run_command)
    app.command("status")(status_command)
    app.command("dag")(dag_command)
    app.command("gc")(gc_command)
