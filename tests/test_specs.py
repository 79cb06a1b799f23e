"""One ``name?key=value&...`` grammar for source specs, backbone names and head parameters:
the same value is typed the same way wherever it is written, and a bad part is one line."""

from __future__ import annotations

import pytest

from embedpipe.backbones.registry import split_inline_options
from embedpipe.data import open_source
from embedpipe.data.forms import parse_query
from embedpipe.errors import ConfigError
from embedpipe.heads import HeadSpec, parse_param
from embedpipe.specs import parse_options, parse_value, split_options


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("5", 5),
        ("-3", -3),
        ("0.2", 0.2),
        ("1e-4", 1e-4),  # YAML 1.1 read this as the string '1e-4'
        ("true", True),
        ("No", False),
        ("null", None),
        ("", None),
        ("balanced", "balanced"),
        ("[256, 64]", [256, 64]),
        ("'5'", "5"),
        ("train+test", "train+test"),  # a plus stays a plus (HF split arithmetic)
        ("a%20b", "a b"),
        ("[1, 2", "[1, 2"),  # not YAML: the text itself, refused later by whoever reads it
    ],
)
def test_values_are_typed_one_way(text: str, value: object) -> None:
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_the_three_places_read_the_same_value_the_same_way() -> None:
    assert parse_query("s", "x=1e-4&y=[1, 2]") == parse_options("x=1e-4&y=[1, 2]")
    assert split_inline_options("clip:m?x=1e-4&y=[1, 2]")[1] == {"x": 1e-4, "y": [1, 2]}
    assert parse_param("x=1e-4") == ("x", 1e-4) and parse_param("y=[1, 2]") == ("y", [1, 2])


def test_none_is_none_for_sources_but_a_word_for_backbones() -> None:
    # a source's ?limit=none means no limit; a backbone's weights=none means random init
    assert parse_query("s", "limit=none") == {"limit": None}
    assert split_inline_options("resnet18?weights=none&pooling=none")[1] == {
        "weights": "none",
        "pooling": "none",
    }


def test_a_head_name_carries_its_parameters() -> None:
    spec = HeadSpec.coerce("logreg?C=0.5&max_iter=300")
    assert spec == HeadSpec("logreg", {"C": 0.5, "max_iter": 300})
    assert spec.build()[-1].C == 0.5
    with pytest.raises(ConfigError, match=r"^head 'logreg': C=-1 is not allowed; C must be"):
        HeadSpec.coerce("logreg?C=-1").build()
    # from the CLI's --head with -p (explicit parameters win) and from a pipeline's dict
    spec = HeadSpec.coerce({"name": "logreg?C=0.5&max_iter=300", "params": {"C": 2.0}})
    assert (spec.name, dict(spec.params)) == ("logreg", {"C": 2.0, "max_iter": 300})


def test_train_takes_inline_head_parameters(tmp_path) -> None:
    import numpy as np

    from embedpipe.cli import main
    from embedpipe.heads import load_head
    from embedpipe.store import StoreWriter

    rng = np.random.default_rng(0)
    w = StoreWriter.create(tmp_path / "s.h5", dim=3, fingerprint="fp", backbone={"name": "t"})
    ids = [f"i{k}" for k in range(20)]
    w.append(rng.normal(size=(20, 3)), ids, [bytes([k]) * 16 for k in range(20)], np.arange(20) % 2)
    w.finalize()
    out = tmp_path / "h.skops"
    with pytest.raises(SystemExit) as info:
        main(["train", "-s", str(tmp_path / "s.h5"), "--head", "knn?n_neighbors=3", "-o", str(out)])
    assert info.value.code in (0, None)
    assert load_head(out).spec["params"]["n_neighbors"] == 3


def test_a_source_spec_reads_its_options() -> None:
    source = open_source("builtin:digits?limit=7&split=none")
    assert len(source) == 7


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: open_source("builtin:digits?limit=5&oops"),
            "bad source option 'oops' in 'builtin:digits?limit=5&oops'; "
            "write NAME?key=value&key=value.",
        ),
        (
            lambda: split_inline_options("clip:folder?tower=text&=3"),
            "bad backbone option '=3' in 'clip:folder?tower=text&=3'; "
            "write NAME?key=value&key=value.",
        ),
        (
            lambda: parse_param("C"),
            "bad head parameter 'C'; write key=value, e.g. C=0.5 or hidden_sizes=[256].",
        ),
    ],
)
def test_a_bad_part_is_one_line_naming_it_and_the_form(call, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()
    assert str(info.value) == message


def test_a_question_mark_without_options_is_part_of_the_name() -> None:
    assert split_options("folder?v2") == ("folder?v2", {})
    assert split_options("a?b?pooling=mean") == ("a?b", {"pooling": "mean"})
