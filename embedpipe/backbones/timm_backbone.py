"""timm models as frozen image encoders (``timm:<model>``).

Weights come from a pretrained tag (``weights="pretrained"``, or ``timm:convnext_tiny.fb_in1k``
with its tag; read from the Hugging Face hub cache), a local ``.safetensors`` / ``.pth`` state
dict (``torch.load(weights_only=True)``), or ``None`` (seeded random initialisation). The
fingerprint is the weights' content (file hash, or the state dict's hash). Preprocessing is
timm's own data config (``resolve_data_config`` / ``create_transform``), recorded in the spec
(hence the store's provenance). Features are the model's pooled pre-logits
(``forward_head(forward_features(x), pre_logits=True)``) or a named stage, globally pooled.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from torchvision.transforms import functional as TF

from embedpipe.backbones._hashing import sha256_file, sha256_state_dict
from embedpipe.backbones._torch_encoder import TorchEncoder
from embedpipe.backbones.base import BackboneSpec, reload
from embedpipe.backbones.device import seeded
from embedpipe.backbones.pixels import normalize_pixels
from embedpipe.backbones.rgb import as_rgb, check_alpha
from embedpipe.backbones.torchvision_backbone import _load_state_file, check_draft, stack_collate
from embedpipe.errors import Arg, ConfigError

DATA_KEYS = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
_UNSET: Any = object()


class TimmPreprocess:
    """PIL image → CHW tensor with timm's eval transform for ``data_config``. Picklable (it
    rebuilds the transform from the config in each worker)."""

    def __init__(
        self, data_config: Mapping[str, Any], alpha: str = "convert", draft: bool = False
    ) -> None:
        self.data_config = dict(data_config)
        self.alpha = alpha  # transparency as timm does it (embedpipe.backbones.rgb)
        self.draft = draft  # large JPEGs decoded at a reduced scale (see decode_min_side)
        self._transform: Any = None

    def __getstate__(self) -> dict[str, Any]:
        return {
            "data_config": self.data_config,
            "alpha": self.alpha,
            "draft": self.draft,
            "_transform": None,
        }

    @property
    def decode_min_side(self) -> int | None:
        """The shorter side timm's eval transform resizes to (``floor(size / crop_pct)``, its
        ``center`` crop mode), where a JPEG may decode at a reduced scale; else ``None``."""
        if not self.draft or self.data_config.get("crop_mode", "center") != "center":
            return None
        size = self.data_config.get("input_size", (3, 224, 224))[-2:]
        crop_pct = float(self.data_config.get("crop_pct") or 0.875)
        return int(math.floor(min(int(v) for v in size) / crop_pct))

    def __call__(self, img: Image.Image) -> torch.Tensor:
        steps = self._steps()
        if steps is None:  # a transform of another shape: timm's own, in one step
            out: torch.Tensor = self._transform(self._rgb(img))
            return out
        return self.normalize(self.pixels(img))

    def _rgb(self, img: Image.Image) -> Image.Image:
        if not isinstance(img, Image.Image):
            raise TypeError(f"expected a PIL image, got {type(img)}")
        return as_rgb(img, self.alpha)

    def _steps(self) -> tuple[list[Any], Any] | None:
        """timm's eval transform as (the PIL steps, its ``Normalize``) when it is the usual
        ``[resize..., crop, ToTensor, Normalize]``, else ``None``."""
        if self._transform is None:
            from timm.data import create_transform

            self._transform = create_transform(**self.data_config, is_training=False)
        ts = list(getattr(self._transform, "transforms", []))
        if len(ts) < 2 or type(ts[-2]).__name__ not in ("ToTensor", "MaybeToTensor"):
            return None
        if type(ts[-1]).__name__ != "Normalize":
            return None
        return ts[:-2], ts[-1]

    @property
    def split(self) -> bool:
        """Whether :meth:`pixels` / :meth:`normalize` apply (see
        :mod:`embedpipe.backbones.pixels`)."""
        return self._steps() is not None

    def pixels(self, img: Image.Image) -> torch.Tensor:
        """timm's resize and crop: the CHW uint8 tensor."""
        steps = self._steps()
        assert steps is not None, "TimmPreprocess.pixels on a transform that does not split"
        img = self._rgb(img)
        for t in steps[0]:
            img = t(img)
        return TF.pil_to_tensor(img)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """``ToTensor`` + timm's ``Normalize``, for one image or a batch."""
        steps = self._steps()
        assert steps is not None
        norm = steps[1]
        return normalize_pixels(batch, [float(v) for v in norm.mean], [float(v) for v in norm.std])


class _PreLogits(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m: Any = self.model
        return m.forward_head(m.forward_features(x), pre_logits=True).flatten(1)  # type: ignore[no-any-return]


class _Stage(nn.Module):
    def __init__(self, model: nn.Module, index: int, pooling: str) -> None:
        super().__init__()
        self.model = model
        self.index = index
        self.pooling = pooling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m: Any = self.model
        out = m.forward_intermediates(x, indices=[self.index], intermediates_only=True)[0]
        if out.dim() == 4:
            return out.amax(dim=(2, 3)) if self.pooling == "max" else out.mean(dim=(2, 3))
        return out.amax(dim=1) if self.pooling == "max" else out.mean(dim=1)


class TimmCNNEncoder(TorchEncoder):
    """A timm convolutional model as a frozen image encoder (see :func:`load_timm`)."""

    family = "cnn"


class TimmTransformerEncoder(TorchEncoder):
    """A timm vision transformer as a frozen image encoder (see :func:`load_timm`)."""

    family = "transformer"


def _is_transformer(model: nn.Module) -> bool:
    return hasattr(model, "patch_embed") or hasattr(model, "blocks")


def _classifier_key(model: Any) -> str | None:
    cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", {}) or {}
    key = cfg.get("classifier") if isinstance(cfg, Mapping) else getattr(cfg, "classifier", None)
    return str(key) if key else None


def _from_file(name: str, path: Path, model_args: dict[str, Any]) -> tuple[nn.Module, str]:
    import timm

    state = _load_state_file(path)
    model = timm.create_model(name, pretrained=False, **model_args)
    head = _classifier_key(model)
    w = state.get(f"{head}.weight") if head else None
    n_classes = int(getattr(model, "num_classes", 0) or 0)
    if w is not None and w.dim() == 2 and w.shape[0] != n_classes:
        model = timm.create_model(name, pretrained=False, num_classes=int(w.shape[0]), **model_args)
    elif head and w is None and n_classes:
        model = timm.create_model(name, pretrained=False, num_classes=0, **model_args)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ConfigError(
            f"weights file {str(path)!r} does not fit timm's {name}: {str(e)[:500]}. Check the "
            "model name (and model_args), or that the file holds this architecture's state dict"
        ) from e
    return model, "sha256:" + sha256_file(path)


def _is_path(weights: str) -> bool:
    return (
        weights.lower().endswith((".safetensors", ".pth", ".pt", ".bin", ".ckpt"))
        or os.sep in weights
        or Path(weights).expanduser().is_file()
    )


def _check_hub(name: str) -> None:
    """Fail fast (one line) when pretrained weights are neither cached nor reachable."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    from embedpipe.backbones.hf_hub import hf_offline, hub_unreachable

    cfg = timm.models.get_pretrained_cfg(name)
    hub_id = getattr(cfg, "hf_hub_id", None)
    if not hub_id or hf_offline():
        return
    cached = any(
        isinstance(try_to_load_from_cache(hub_id, f), str)
        for f in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")
    )
    reason = None if cached else hub_unreachable()
    if reason is not None:
        raise ConfigError(
            f"timm weights {hub_id!r} are not in the Hugging Face cache and the hub cannot be "
            f"reached ({reason}); on an offline machine set HF_HUB_OFFLINE=1 and pass ",
            Arg("weights", py="<local .safetensors/.pth file>"),
            " (torchvision checkpoints: `embedpipe weights import FILE`)",
        )


def _stage_index(model: Any, layer: str | int, name: str) -> int:
    info = [f.get("module") for f in getattr(model, "feature_info", [])]
    try:
        idx = int(layer)
    except (TypeError, ValueError):
        if layer in info:
            return info.index(layer)
        raise ConfigError(
            f"timm model {name} has no stage {layer!r}; use an index 0..{len(info) - 1} or one "
            f"of {info}"
        ) from None
    if not -len(info) <= idx < len(info):
        raise ConfigError(f"stage {idx} out of range for {name}: it has {len(info)} ({info})")
    return idx % len(info)


def load_timm(
    name: str,
    *,
    weights: str | None = _UNSET,
    layer: str | int | None = None,
    pooling: str | None = None,
    seed: int = 0,
    model_args: Mapping[str, Any] | None = None,
    **data: Any,
) -> TorchEncoder:
    """Load a timm model as a frozen image encoder.

    Parameters
    ----------
    name
        A timm model name, optionally with its pretrained tag (``"convnext_tiny.fb_in1k"``).
    weights
        ``"pretrained"`` (default when the name has a tag; the hub cache is used, so offline
        it must have been downloaded), a local ``.safetensors``/``.pth`` state dict, or
        ``None`` (random init with ``seed``; the default for a name without a tag).
    layer
        ``None``: the pooled pre-logits. A stage index or ``feature_info`` module name
        (``"stages.2"``, ``"blocks.5"``): that stage's output, globally pooled.
    pooling
        For a stage: ``"avg"`` (default) or ``"max"``.
    seed
        Random initialisation seed (``weights=None``).
    model_args
        Keyword arguments of ``timm.create_model`` (e.g. ``{"img_size": 64}``).
    **data
        Overrides of timm's data config: ``input_size``, ``interpolation``, ``mean``,
        ``std``, ``crop_pct``, ``crop_mode``.

    Returns
    -------
    TorchEncoder
        ``spec.preprocessing`` is the data config; ``spec.weights_id`` the weights' hash.

    Raises
    ------
    ConfigError
        Unknown model, option, stage or pooling; weights that do not fit or are not cached.

    Examples
    --------
    >>> enc = load_timm("resnet18", weights=None, input_size=(3, 64, 64))
    >>> enc.dim, enc.spec.preprocessing["input_size"]
    (512, [3, 64, 64])
    """
    import timm
    from timm.data import resolve_data_config

    unknown = sorted(set(data) - {*DATA_KEYS, "alpha", "draft"})
    if unknown:
        raise ConfigError(
            f"unknown timm option(s) {unknown}; accepted: "
            f"{sorted([*DATA_KEYS, 'alpha', 'draft', 'seed', 'model_args'])}"
        )
    arch, _, tag = name.partition(".")
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch[:6]}*")[:8]
        raise ConfigError(f"unknown timm model {name!r}; similar: {', '.join(close) or 'none'}")
    margs = dict(model_args or {})
    if weights is _UNSET:
        weights = "pretrained" if tag else None
    if weights is None:
        with seeded(int(seed)):
            model = timm.create_model(name, pretrained=False, **margs)
        weights_id = f"random-init:seed={int(seed)}:sha256={sha256_state_dict(model.state_dict())}"
        spec_weights: str | None = None
    elif weights == "pretrained":
        _check_hub(name)
        try:
            model = timm.create_model(name, pretrained=True, **margs)
        except Exception as e:
            raise ConfigError(
                f"cannot load timm's pretrained weights of {name!r}: "
                f"{str(e).splitlines()[0][:300] if str(e) else type(e).__name__}. Offline, "
                "download them on a connected machine (they live in the Hugging Face hub "
                "cache), or pass ",
                Arg("weights", py="<local .safetensors/.pth file>"),
            ) from e
        weights_id = "sha256:" + sha256_state_dict(model.state_dict())
        spec_weights = "pretrained"
    elif _is_path(weights):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"weights file {weights!r} not found; pass an existing file, 'pretrained' or None"
            )
        model, weights_id = _from_file(name, path, margs)
        spec_weights = str(path.resolve())
    else:
        raise ConfigError(
            f"timm weights {weights!r} unknown; use 'pretrained', a local .safetensors/.pth "
            "file, or None"
        )
    model.eval()
    data = dict(data)
    img_size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if "input_size" not in data and img_size is not None:
        data["input_size"] = (3, *[int(v) for v in img_size])  # e.g. model_args img_size
    alpha = check_alpha(data.pop("alpha", "convert"))
    draft = check_draft(data.pop("draft", True))
    config = resolve_data_config(data, model=model)
    preprocess = TimmPreprocess(config, alpha, draft)
    if layer is None:
        if pooling not in (None, "model"):
            raise ConfigError(
                f"pooling {pooling!r} does not apply to the pre-logits of {name} (pooled by the "
                "model); pass ",
                Arg("layer", py="<stage>"),
                " to pool a stage",
            )
        feats: nn.Module = _PreLogits(model)
        pooling, layer_name = "model", None
    else:
        pooling = pooling or "avg"
        if pooling not in ("avg", "max"):
            raise ConfigError(f"stage pooling {pooling!r} unknown; use 'avg' or 'max'")
        idx = _stage_index(model, layer, name)
        feats = _Stage(model, idx, pooling)
        info: Any = model.feature_info
        layer_name = str(info[idx]["module"])
    x = torch.zeros(1, *[int(v) for v in config["input_size"]])
    with torch.inference_mode():
        dim = int(feats(x).shape[1])
    spec = BackboneSpec(
        kind="timm",
        name=name,
        weights=spec_weights,
        weights_id=weights_id,
        layer=layer_name,
        pooling=pooling,
        modality="image",
        preprocessing=config,
        options={
            "model_args": margs,
            **({"seed": int(seed)} if weights is None else {}),
            # a spec without it (stores made before): transparency composited over white
            **({"alpha": alpha} if alpha != "white" else {}),
            # a spec without it: JPEGs decoded at full size
            **({"draft": True} if draft else {}),
        },
    )
    cls = TimmTransformerEncoder if _is_transformer(model) else TimmCNNEncoder
    return cls(spec, feats, dim, preprocess, stack_collate)


def timm_from_spec(spec: BackboneSpec, **overrides: Any) -> TorchEncoder:
    """Rebuild the encoder a spec describes (``overrides`` replace spec fields/options)."""
    kw: dict[str, Any] = {
        "weights": spec.weights,
        "layer": spec.layer,
        "pooling": None if spec.layer is None else spec.pooling,
        "model_args": spec.options.get("model_args") or {},
        **{k: spec.preprocessing[k] for k in DATA_KEYS if k in spec.preprocessing},
    }
    if "seed" in spec.options:
        kw["seed"] = spec.options["seed"]
    kw["alpha"] = spec.options.get("alpha", "white")
    kw["draft"] = spec.options.get("draft", False)
    return reload(load_timm, spec, overrides, **kw)
