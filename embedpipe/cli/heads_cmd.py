"""``embedpipe train``, ``evaluate`` and ``predict``: heads on feature stores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import AllowIncompleteOption, source_kwargs


def _head_arg(text: str) -> Any:
    """A head name, or a YAML mapping such as ``{name: knn, params: {n_neighbors: 10}}``."""
    import yaml

    from ..errors import ConfigError

    text = text.strip()
    if text.startswith("{"):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(
                f"cannot read head {text!r}: {e}. Write a name or {{name: knn, params: {{n_neighbors: 10}}}}."
            ) from e
    return text


def _params(pairs: list[str] | None) -> dict[str, Any]:
    from ..heads import parse_param

    return dict(parse_param(p) for p in pairs or [])


def _checked_spec(spec: Any) -> Any:
    """A :class:`HeadSpec` whose name, parameters and preprocessing are valid (before any
    store is opened): a bad ``-p KEY=VALUE`` is one line naming the head, key and value."""
    from ..heads import HeadSpec

    head = HeadSpec.coerce(spec)
    head.validate()
    return head


_TRUST = typer.Option(
    "--trust",
    help="Allow loading a pickle/joblib head (runs code from the file: only for files you made).",
)


def train_command(
    store: Annotated[
        Path, typer.Option("--store", "-s", help="Feature store (.h5) with labelled rows.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to save the trained head (.skops).")
    ],
    head: Annotated[
        str, typer.Option("--head", help="Head name (`embedpipe heads` lists them).")
    ] = "logreg",
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Head parameter key=value (repeatable), e.g. -p C=0.5."),
    ] = None,
    preprocess: Annotated[
        str,
        typer.Option(
            help="auto (none for L2-normalised features, else standardize), standardize, l2, "
            "pca:N, combinations (l2+pca:128) or none."
        ),
    ] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed of the head.")] = 0,
    out_of_core: Annotated[
        bool, typer.Option(help="Stream the store in batches (sgd/torch heads; flat memory).")
    ] = False,
    batch_size: Annotated[int, typer.Option(help="Rows per batch with --out-of-core.")] = 8192,
    epochs: Annotated[int, typer.Option(help="Passes over the store with --out-of-core.")] = 5,
    eval_store: Annotated[
        Path | None, typer.Option("--eval", help="Held-out store to score the head on.")
    ] = None,
    allow_incomplete: AllowIncompleteOption = False,
) -> None:
    """Train a head on a feature store and save it with the store's provenance."""
    from ..heads import evaluate_head, train_head
    from ..heads.autoscale import chosen_preprocessing

    spec = _checked_spec(
        {"name": head, "params": _params(param), "preprocess": preprocess, "random_state": seed}
    )
    trained = train_head(
        store,
        spec,
        out_of_core=out_of_core,
        batch_size=batch_size,
        epochs=epochs,
        out=out,
        allow_incomplete=allow_incomplete,
    )
    typer.echo(
        f"{out}: {trained.spec['name']} on {trained.trained_on['n_rows']} rows x {trained.n_features} "
        f"({len(trained.classes)} classes) in {trained.training['fit_seconds']:.2f}s; backbone "
        f"{trained.backbone.get('name')} [{trained.fingerprint}]"
    )
    chosen = chosen_preprocessing(trained.estimator)
    if chosen is not None:
        why = "L2-normalised features" if chosen == "none" else "features not L2-normalised"
        typer.echo(f"preprocess auto: {chosen} ({why})")
    if eval_store is not None:
        fit_s = trained.training.get("fit_seconds")
        report = evaluate_head(
            trained, eval_store, fit_seconds=fit_s, allow_incomplete=allow_incomplete
        )
        typer.echo(report.table())


def list_heads_command() -> None:
    """List the registered heads."""
    from ..heads import describe_heads

    for name, text in describe_heads().items():
        typer.echo(f"{name:18s} {text}")


def evaluate_command(
    store: Annotated[
        list[Path],
        typer.Option(
            "--store",
            "-s",
            help="Feature store (.h5) with labelled rows. Repeat it with stores of one dataset "
            "(one per backbone or layer) to print a leaderboard: each store's best --head.",
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option("--model", "-m", help="A trained head (.skops): score it on the store."),
    ] = None,
    head: Annotated[
        list[str] | None,
        typer.Option(
            "--head",
            help="Heads to cross-validate (repeatable): a name or '{name: knn, params: {n_neighbors: 10}}'.",
        ),
    ] = None,
    preprocess: Annotated[
        str, typer.Option(help="Preprocessing of heads given by name (as train's).")
    ] = "auto",
    cv: Annotated[int, typer.Option(help="Cross-validation folds (with --head).")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds and heads.")] = 0,
    top_k: Annotated[int, typer.Option(help="k of the top-k accuracy.")] = 5,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the report as JSON here.")
    ] = None,
    trust: Annotated[bool, _TRUST] = False,
    allow_incomplete: AllowIncompleteOption = False,
) -> None:
    """Score a trained head on a held-out store (--model), or cross-validate heads (--head ...)."""
    from ..errors import ConfigError
    from ..heads import cross_validate_heads, evaluate_head, load_head

    if (model is None) == (not head):
        raise ConfigError(
            "pass either --model HEAD.skops (held-out evaluation) or one or more --head NAME (cross-validation)."
        )
    if model is not None and len(store) > 1:
        raise ConfigError("--model scores one head on one --store; give a single --store.")
    if model is not None:
        # no fit time: this command fitted nothing (the head's own is in its file)
        report = evaluate_head(
            load_head(model, trusted=trust),
            store[0],
            top_k=top_k,
            allow_incomplete=allow_incomplete,
        )
    else:
        specs = []
        for h in head or []:
            spec = _head_arg(h)
            if isinstance(spec, str):
                spec = {"name": spec}
            if not isinstance(spec, dict):
                raise ConfigError(
                    f"cannot read head {h!r}; write a name or {{name: knn, params: {{n_neighbors: 10}}}}."
                )
            spec.setdefault("preprocess", preprocess)
            _checked_spec(spec)
            specs.append(spec)
        if len(store) > 1:  # one dataset, several backbones: the leaderboard
            from ..heads.leaderboard import format_table, leaderboard, store_candidates

            heads = [{**sp, "random_state": seed} for sp in specs]
            rows = leaderboard(store_candidates(store, heads, cv=cv, seed=seed), seed=seed)
            typer.echo(format_table(rows))
            if json_out is not None:
                json_out.write_text(json.dumps([r.to_dict() for r in rows], indent=1))
                typer.echo(f"leaderboard written to {json_out}")
            return
        report = cross_validate_heads(
            specs,
            store[0],
            cv=cv,
            random_state=seed,
            top_k=top_k,
            allow_incomplete=allow_incomplete,
        )
    typer.echo(report.table())
    if json_out is not None:
        report.to_json(json_out)
        typer.echo(f"report written to {json_out}")


def predict_command(
    model: Annotated[
        Path,
        typer.Option("--model", "-m", help="A trained head (.skops) or a fine-tuned model folder."),
    ],
    store: Annotated[
        Path | None, typer.Option("--store", "-s", help="Predict the rows of this feature store.")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data", "-d", help="Predict raw inputs: image folder, table or builtin:NAME."
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write predictions (.csv, .jsonl, .parquet).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Items per forward pass (raw inputs).")] = 64,
    text_column: Annotated[str | None, typer.Option(help="Text column of a table.")] = None,
    label_column: Annotated[str | None, typer.Option(help="Label column of a table.")] = None,
    path_column: Annotated[str | None, typer.Option(help="Image path column of a table.")] = None,
    id_column: Annotated[str | None, typer.Option(help="Id column of a table.")] = None,
    trust: Annotated[bool, _TRUST] = False,
) -> None:
    """Predict classes of a store's rows, or of new raw inputs (through backbone + head)."""
    from ..errors import ConfigError
    from ..heads.predict import load_model, predict_source
    from ..heads.trained import TrainedHead

    if (store is None) == (data is None):
        raise ConfigError("pass exactly one of --store FEATURES.h5 or --data SOURCE (raw inputs).")
    loaded = load_model(model, trusted=trust)
    if store is not None:
        if not isinstance(loaded, TrainedHead):
            raise ConfigError(
                f"{model} is a fine-tuned model: it predicts raw inputs; use --data, not --store."
            )
        preds = loaded.predict_store(store, with_content=True)
    else:
        from ..data import open_source

        assert data is not None
        source = open_source(
            data, **source_kwargs(text_column, label_column, path_column, id_column)
        )
        preds = predict_source(loaded, source, batch_size=batch_size)
    if out is not None:
        preds.write(out)
        typer.echo(f"{len(preds.ids)} predictions written to {out}")
        return
    for rec in preds.to_records():
        if "input" in rec:  # what the item is, on one short line
            text = " ".join(str(rec["input"]).split())
            rec["input"] = text if len(text) <= 60 else text[:59] + "…"
        keys = ("id", "class", "score", "true_class", "input")
        typer.echo("\t".join("-" if rec[k] is None else str(rec[k]) for k in keys if k in rec))


def register(app: typer.Typer) -> None:
    """Add ``train``, ``evaluate``, ``predict`` and ``heads`` to the ``embedpipe`` app."""
    app.command("train")(train_command)
    app.command("evaluate")(evaluate_command)
    app.command("predict")(predict_command)
    app.command("heads")(list_heads_command)
