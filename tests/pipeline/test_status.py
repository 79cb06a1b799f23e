"""``status``: cached or stale, and the reason — which parameter, dataset or input changed."""

from __future__ import annotations

from pathlib import Path

from embedpipe.pipeline import collect_garbage, pipeline_status

from .conftest import edit_yaml, run, write_csv


def _status(proj: Path) -> dict[str, tuple[str, list[str]]]:
    return {
        s.name: (s.state, s.reasons)
        for s in pipeline_status(proj / "pipeline.yaml", proj / "cache")
    }


def test_never_run(text_project: Path) -> None:
    st = _status(text_project)
    assert st == {
        n: ("stale", ["never run on this cache"]) for n in ("enc_train", "enc_test", "idx")
    }


def test_all_cached_after_a_run(text_project: Path) -> None:
    run(text_project)
    assert all(state == "cached" and not why for state, why in _status(text_project).values())


def test_parameter_change_names_the_parameter_and_values(text_project: Path) -> None:
    run(text_project)
    edit_yaml(
        text_project / "pipeline.yaml", lambda d: d["stages"]["idx"]["params"].update(metric="l2")
    )
    st = _status(text_project)
    assert st["idx"] == ("stale", ["parameter metric: 'cosine' -> 'l2'"])
    assert st["enc_train"][0] == "cached"


def test_upstream_change_names_the_input(text_project: Path) -> None:
    run(text_project)
    edit_yaml(
        text_project / "pipeline.yaml",
        lambda d: d["stages"]["enc_train"]["params"]["options"].update(lowercase=False),
    )
    st = _status(text_project)
    assert st["enc_train"] == ("stale", ["parameter options.lowercase added (false)"])
    assert st["idx"] == ("stale", ["input 'features' changed upstream (enc_train)"])
    assert st["enc_test"] == ("cached", [])


def test_dataset_change_names_the_dataset(text_project: Path, snippets: list) -> None:
    run(text_project)
    write_csv(text_project / "test.csv", snippets[300:399])
    st = _status(text_project)
    assert st["enc_test"][0] == "stale"
    assert st["enc_test"][1][0].startswith("dataset 'test' changed (content digest ")


def test_removed_entry_is_explained(text_project: Path) -> None:
    run(text_project)
    collect_garbage(text_project / "cache", [])  # records reference everything: nothing removed
    assert _status(text_project)["idx"][0] == "cached"
    edit_yaml(
        text_project / "pipeline.yaml", lambda d: d["stages"]["idx"]["params"].update(metric="l2")
    )
    run(text_project)
    edit_yaml(
        text_project / "pipeline.yaml",
        lambda d: d["stages"]["idx"]["params"].update(metric="cosine"),
    )
    assert _status(text_project)["idx"] == ("cached", [])  # the old entry is still there
    collect_garbage(text_project / "cache")  # the record now points at the l2 index: cosine goes
    assert _status(text_project)["idx"] == ("stale", ["parameter metric: 'l2' -> 'cosine'"])
    run(text_project)
    collect_garbage(text_project / "cache")
    edit_yaml(
        text_project / "pipeline.yaml", lambda d: d["stages"]["idx"]["params"].update(metric="l2")
    )
    run(text_project)  # rebuilt; the record says l2 again
    from embedpipe.pipeline import Cache

    key = run(text_project)["idx"].key
    Cache(text_project / "cache").remove("index", key)
    assert _status(text_project)["idx"][1][0].startswith("cache entry missing")


def test_a_store_swapped_into_an_entry_is_stale_and_rebuilt(text_project: Path) -> None:
    """Issue 22, item 9: a store copied over an encode entry's store was reused silently."""
    import shutil

    from embedpipe.store import FeatureStore

    res = run(text_project)
    paths = {n: r.output_path for n, r in res.stages.items()}
    with FeatureStore(paths["enc_train"]) as fs:
        want = (fs.dataset_digest, len(fs))
    shutil.copy(paths["enc_test"], paths["enc_train"])  # same backbone, another dataset
    state, why = _status(text_project)["enc_train"]
    assert state == "stale" and "was replaced since it was built (dataset_digest" in why[0]
    res = run(text_project)
    assert "enc_train" in res.executed
    with FeatureStore(paths["enc_train"]) as fs:
        assert (fs.dataset_digest, len(fs)) == want
    assert _status(text_project)["enc_train"] == ("cached", [])
