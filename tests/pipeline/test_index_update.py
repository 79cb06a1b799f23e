"""The index stage updates its last index when only its input store grew."""

from __future__ import annotations

from pathlib import Path

from embedpipe.index import SimilarityIndex, build_index

from .conftest import run, write_csv


def test_index_stage_updates_when_its_store_grew(text_project: Path, snippets) -> None:
    first = run(text_project)
    assert "update" not in first.stages["idx"].outputs
    # the dataset grows by 60 snippets and loses 10: the encode adds only the new ones
    write_csv(text_project / "train.csv", snippets[10:300] + snippets[400:460])
    second = run(text_project)
    idx = second.stages["idx"]
    assert idx.status != "hit" and idx.outputs["updated_from"] == first.stages["idx"].key
    assert idx.outputs["update"].startswith("added 60, removed 10")
    updated = SimilarityIndex.load(idx.path / "index")
    store = second.stages["enc_train"].output_path
    rebuilt = build_index(store, "flat")
    assert len(updated) == len(rebuilt) == 350
    q = rebuilt.row_vectors(rebuilt.rows_of([snippets[420][0]]))
    assert [h.id for h in updated.search(q, 8)[0]] == [h.id for h in rebuilt.search(q, 8)[0]]
    # the first run's entry is untouched (the update worked on a copy)
    assert len(SimilarityIndex.load(first.stages["idx"].path / "index")) == 300
