"""Stage parameters are checked before anything runs, in one line naming stage, key and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedpipe.errors import ConfigError
from embedpipe.pipeline import Cache, Pipeline, load_pipeline, run_pipeline

from .conftest import text_pipeline, write_yaml

KNN = {
    "kind": "train",
    "inputs": {"train": "enc_train"},
    "params": {"head": "knn", "options": {"n_neighbors": "fifteen"}},
}


def test_a_bad_head_option_fails_before_any_stage_runs(text_project: Path) -> None:
    f = write_yaml(
        text_project / "pipeline.yaml", text_pipeline("vectors/v.txt", extra_stages={"knn": KNN})
    )
    started: list[str] = []
    with pytest.raises(ConfigError) as e:
        run_pipeline(
            f,
            cache=text_project / "cache",
            runs_dir=text_project / "runs",
            progress=False,
            on_event=lambda ev, r, msg: started.append(r.name) if ev == "start" and r else None,
        )
    msg = str(e.value)
    print(msg)
    assert "\n" not in msg
    assert "pipeline.yaml line" in msg and "stage 'knn' (train)" in msg
    assert "n_neighbors='fifteen' is not allowed" in msg and "must be an int" in msg
    assert started == [] and list(Cache(text_project / "cache").entries()) == []
    # the same check on its own, and the same line
    with pytest.raises(ConfigError) as again:
        load_pipeline(f).check()
    assert str(again.value) == msg


def test_a_bad_type_in_stage_parameters_names_value_and_what_is_allowed(tmp_path: Path) -> None:
    data = text_pipeline("vectors/v.txt")
    data["stages"]["enc_train"]["params"]["batch_size"] = "sixty-four"
    with pytest.raises(ConfigError) as e:
        load_pipeline(write_yaml(tmp_path / "p.yaml", data))
    msg = str(e.value)
    assert "stage 'enc_train' (encode)" in msg and "key 'batch_size'" in msg
    assert "'sixty-four' is not allowed; it should be a valid integer" in msg


def test_a_new_stage_kind_is_one_registration(tmp_path: Path, text_project: Path) -> None:
    """A kind registered with the decorator is loaded, keyed, run and listed like the built-ins."""
    from embedpipe.pipeline import STAGE_KINDS, Params, Role, register_stage_kind

    class CountParams(Params):
        every: int = 1

    @register_stage_kind(
        "count_rows",
        version=1,
        params=CountParams,
        inputs={"features": Role(("encode",))},
        main_output="count",
        describe=lambda p: f"every {p.every}",
    )
    def run(ctx):  # type: ignore[no-untyped-def]
        from embedpipe.store import FeatureStore

        with FeatureStore(ctx.require("features").file("store")) as fs:
            n = len(fs) // ctx.params.every
        (ctx.out / "count.txt").write_text(str(n))
        return {"count": "count.txt", "n": n}

    try:
        data = text_pipeline("vectors/v.txt")
        data["stages"]["n"] = {"kind": "count_rows", "inputs": {"features": "enc_train"}}
        p = Pipeline.from_dict(data, base_dir=text_project)
        assert "count_rows" in STAGE_KINDS and "every 1" in p.dag()
        r = p.run(cache=tmp_path / "c", runs_dir=tmp_path / "r", progress=False)
        assert r["n"].outputs["n"] == 300 and r["n"].output_path.read_text() == "300"
        data["stages"]["n"]["inputs"] = {"features": "idx"}
        with pytest.raises(ConfigError, match="it must be a encode stage"):
            Pipeline.from_dict(data, base_dir=text_project)
    finally:
        STAGE_KINDS.unregister("count_rows")
