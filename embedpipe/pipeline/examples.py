"""The example pipelines shipped inside the package (``embedpipe examples`` writes them out),
so that a wheel install has them too, not only a clone of the repository."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import ConfigError, Fix


def example_pipelines() -> dict[str, str]:
    """``{file name: YAML text}`` of every example pipeline shipped with the package.

    Examples
    --------
    >>> "quickstart.yaml" in example_pipelines()
    True
    """
    folder = resources.files("embedpipe") / "examples"
    return {
        f.name: f.read_text(encoding="utf-8")
        for f in sorted(folder.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".yaml")
    }


def write_examples(dest: str | Path = "pipelines", overwrite: bool = False) -> list[Path]:
    """Write the example pipelines into ``dest`` (created if needed); return their paths.

    A file that exists with other content is kept unless ``overwrite`` (an identical one is
    simply left as it is).

    Examples
    --------
    >>> "quickstart.yaml" in [p.name for p in write_examples("pipelines")]
    True
    """
    folder = Path(dest)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{str(folder)!r} is a file; give a folder to write the examples into")
    examples = example_pipelines()
    clash = [
        name
        for name, text in examples.items()
        if (folder / name).is_file() and (folder / name).read_text(encoding="utf-8") != text
    ]
    if clash and not overwrite:
        raise ConfigError(
            f"{str(folder)!r} already holds other versions of {', '.join(clash)}; choose another "
            "folder",
            Fix(", or pass ", overwrite=True, does=" to replace them"),
        )
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in examples.items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
