"""EncodeOptions: one validated, frozen encode request, used by every way to start an encode."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from embedpipe.encoding import EncodeOptions, encode
from embedpipe.encoding.options import CHECKS, check_option
from embedpipe.errors import ConfigError


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("batch_size", 0, r"^batch_size=0; it must be a positive integer\.$"),
        ("batch_size", True, r"^batch_size=True"),
        ("num_workers", -1, r"^num_workers=-1; it must be an integer >= 0 or None\.$"),
        ("device", "gpu", r"^device='gpu'; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'\.$"),
        ("precision", "fp64", r"^precision='fp64'; use one of 'auto', 'fp32', 'bf16', 'fp16'\.$"),
        ("on_error", "ignore", r"^on_error='ignore'; use one of 'raise', 'skip'\.$"),
        ("dtype", "float64", r"^dtype='float64'; use one of 'float32', 'float16'\.$"),
        ("overwrite", "yes", r"^overwrite='yes'; use True or False\.$"),
        ("compile", "fast", r"^compile='fast'; use one of 'off', 'on', 'auto'\.$"),
        ("decode_device", "gpu0", r"^decode_device='gpu0'"),
        ("n_shards", 0, r"^n_shards=0"),
        ("reuse_from", 3, r"^reuse_from=3; give a list of store paths\.$"),
    ],
)
def test_each_bad_option_is_one_line_naming_it(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        EncodeOptions(**{field: value})
    assert "\n" not in str(info.value)


def test_defaults_normalisation_frozen_and_replace() -> None:
    o = EncodeOptions()
    assert (o.precision, o.device, o.compile, o.wait, o.allow_empty) == (
        "auto",
        "auto",
        "off",
        True,
        False,
    )
    assert set(CHECKS) == {f.name for f in dataclasses.fields(EncodeOptions)}  # one check each
    o2 = o.replace(reuse_from=["a.h5", Path("b.h5")], compile=True, device="cuda:1")
    assert o2.reuse_from == (Path("a.h5"), Path("b.h5")) and o2.compile == "on"
    assert o2.device == "cuda:1" and o.reuse_from == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.batch_size = 3  # type: ignore[misc]
    with pytest.raises(ConfigError, match=r"not both"):
        EncodeOptions(n_shards=2, shard_size=8)
    assert EncodeOptions.of({"batch_size": 8}, dtype="float16").to_dict()["dtype"] == "float16"
    assert check_option("num_workers", None) is None


def test_unknown_option_suggests_the_close_name(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown encode option 'batchsize'; did you mean 'batch_size'\?"
    ):
        EncodeOptions.from_kwargs(batchsize=8)
    # encode() takes the same keywords and checks them before touching data or models
    with pytest.raises(ConfigError, match=r"unknown encode option 'presicion'"):
        encode(None, "no-such-backbone", tmp_path / "x.h5", presicion="fp32")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^batch_size=-2"):
        encode(None, "no-such-backbone", tmp_path / "x.h5", batch_size=-2)  # type: ignore[arg-type]
    assert not (tmp_path / "x.h5").exists()


def test_pipeline_encode_params_use_the_same_checks_and_defaults() -> None:
    from embedpipe.pipeline.kinds import EncodeParams

    p = EncodeParams(backbone="minilm")
    assert (
        p.encode_options() == EncodeOptions()
    )  # a pipeline encodes at precision auto, like the CLI
    with pytest.raises(ValueError, match=r"dtype='float64'; use one of 'float32', 'float16'"):
        EncodeParams(backbone="minilm", dtype="float64")
    with pytest.raises(ValueError, match=r"compile='fast'"):
        EncodeParams(backbone="minilm", compile="fast")
    opts = EncodeParams(backbone="minilm", batch_size=8, compile="auto").encode_options(
        progress=False
    )
    assert (opts.batch_size, opts.compile, opts.progress) == (8, "auto", False)
    # how the work runs is not part of the stage key; what it produces is
    assert "compile" not in p.key_params() and p.key_params()["precision"] == "auto"


def test_a_new_option_is_one_field_derived_everywhere(tmp_path: Path) -> None:
    """commit_interval is declared once (a field and its check) and reaches the pipeline's
    parameters (run-only: not in the key) and the CLI flags without code of its own there."""
    import dataclasses

    from typer.testing import CliRunner

    from embedpipe.cli import app
    from embedpipe.encoding.options import option_fields
    from embedpipe.pipeline.kinds import EncodeParams

    assert EncodeOptions().commit_interval == 0.0  # off by default
    with pytest.raises(ConfigError, match=r"commit_interval=-1; give a number of seconds"):
        EncodeOptions(commit_interval=-1)
    p = EncodeParams(backbone="minilm", commit_interval=2)
    assert p.encode_options().commit_interval == 2.0
    assert "commit_interval" in EncodeParams.run_only
    assert p.key_params() == EncodeParams(backbone="minilm").key_params()
    with pytest.raises(ValueError, match=r"commit_interval"):
        EncodeParams(backbone="minilm", commit_interval="soon")
    help_text = CliRunner().invoke(app, ["encode", "--help"], env={"COLUMNS": "200"}).output
    for f in option_fields("cli"):
        flag = f.metadata["flag"] or "--" + f.name.replace("_", "-")
        assert flag.split("/")[0] in help_text, flag
    # every field is declared with option(): a check, help, and where it shows
    for f in dataclasses.fields(EncodeOptions):
        assert {"check", "help", "pipeline", "run_only", "flag"} <= set(f.metadata), f.name
