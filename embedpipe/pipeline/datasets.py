"""The pipeline's named datasets: opened lazily, identified by their content digest."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, NotFoundError
from .keys import split_scheme

if TYPE_CHECKING:
    from ..data.base import DataSource
    from .spec import DatasetSpec


def _resolve_source(source: str, base_dir: Path) -> str:
    """A relative path is relative to the pipeline file; ``scheme:...`` specs pass unchanged."""
    scheme, _ = split_scheme(source)
    if scheme:
        return source
    p = Path(source).expanduser()
    if p.is_absolute():
        return str(p)
    return str((base_dir / p).resolve())


class DatasetHandle:
    """One named dataset of a pipeline.

    The source is opened on first use, and the digest (a hash of ids, content hashes and
    labels — see :meth:`embedpipe.data.base.DataSource.digest`) computed once.
    """

    def __init__(self, name: str, spec: DatasetSpec, base_dir: Path) -> None:
        self.name = name
        self.spec = spec
        self.base_dir = base_dir

    def __repr__(self) -> str:
        return f"DatasetHandle({self.name!r}, source={self.spec.source!r})"

    @property
    def description(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.spec.options.items())
        return f"{self.spec.source}{f' ({opts})' if opts else ''}"

    @cached_property
    def source(self) -> DataSource:
        from ..data import open_source

        spec = _resolve_source(self.spec.source, self.base_dir)
        try:
            return open_source(spec, **self.spec.options)
        except ConfigError as e:
            raise ConfigError(f"dataset {self.name!r}: {e}") from e
        except NotFoundError as e:  # an unknown form, builtin name or column
            raise NotFoundError(f"dataset {self.name!r}: {e}") from e
        except TypeError as e:  # an option open_source does not take
            raise ConfigError(
                f"dataset {self.name!r}: {e}. Check its options: {sorted(self.spec.options)}."
            ) from e

    @cached_property
    def digest(self) -> str:
        return self.source.digest()

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "spec": self.spec.to_dict(),
            "digest": self.digest,
            "n_items": len(self.source),
        }
