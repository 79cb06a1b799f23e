"""How a worker builds its encoder: a backbone spec dict and the function that loads it.

Workers receive this factory, never a model object: pickling a model would ship its weights
through the scheduler and tie workers to the driver's device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..backbones.base import BackboneSpec, Encoder
from ..backbones.registry import check_fingerprint, resolve_encoder

LoadFn = Callable[..., Encoder]


class BackboneFactory:
    """A backbone spec dict (as stored in a feature store) plus the function that loads it.

    Parameters
    ----------
    spec
        A complete :class:`~embedpipe.backbones.BackboneSpec` dict (with ``weights_id``).
    load
        ``load(spec) -> Encoder``; default :func:`embedpipe.backbones.load_backbone`. Must be
        importable on the workers (a module-level function).

    Notes
    -----
    An encoder the driver already loaded is kept (not pickled) so the local executor does not
    load the model twice; a Ray worker always loads its own.

    Examples
    --------
    >>> f, enc = BackboneFactory.resolve("resnet18", weights=None, crop_size=32, resize_size=32)
    >>> import pickle
    >>> again = pickle.loads(pickle.dumps(f))  # what a worker receives: the spec, no model
    >>> again.build().fingerprint == enc.fingerprint
    True
    """

    def __init__(
        self, spec: Mapping[str, Any], load: LoadFn | None = None, *, encoder: Encoder | None = None
    ) -> None:
        self.spec = dict(spec)
        self.load = load
        self.fingerprint = BackboneSpec.from_dict(self.spec).fingerprint()
        self._encoder = encoder

    @classmethod
    def resolve(
        cls,
        backbone: Encoder | BackboneSpec | str | Mapping[str, Any],
        load: LoadFn | None = None,
        **options: Any,
    ) -> tuple[BackboneFactory, Encoder | None]:
        """A factory for ``backbone``, and the encoder if it had to be loaded to know its spec.

        A complete spec dict (one with ``weights_id``, e.g. a store's provenance) needs no
        loading; a name (``"resnet18"``, ``"minilm"``, a preset) is loaded once here, with
        ``options`` (``weights=None``, ``crop_size=64``...), to learn its exact spec.
        """
        if isinstance(backbone, Encoder):
            return cls(backbone.spec.to_dict(), load, encoder=backbone), backbone
        if isinstance(backbone, BackboneSpec):
            backbone = backbone.to_dict()
        if isinstance(backbone, Mapping) and backbone.get("weights_id") is not None and not options:
            return cls(backbone, load), None
        from ..backbones import load_backbone

        enc = load_backbone(backbone, **options) if load is None else load(backbone, **options)
        return cls(enc.spec.to_dict(), load, encoder=enc), enc

    def build(
        self,
        device: str = "cpu",
        precision: str = "fp32",
        runtime: str = "torch",
        runtime_min_cosine: float | None = None,
    ) -> Encoder:
        """The encoder on ``device`` at ``precision`` and ``runtime``: the one already loaded
        in this process (``"auto"`` keeps its own settings), else loaded from the spec
        (``"auto"``: a worker's own GPU where it has one), through
        :func:`~embedpipe.backbones.registry.resolve_encoder`.

        Raises
        ------
        FingerprintMismatchError
            The worker loaded other weights or settings than the driver planned with (e.g. a
            different weights file at the same path on another node).
        """
        if self._encoder is not None:
            base: Any = self._encoder
        elif self.load is None:
            base = self.spec
        else:
            base = self.load(self.spec).to(device, precision)
        enc = resolve_encoder(
            base,
            device=device,
            precision=precision,
            runtime=runtime,
            runtime_min_cosine=runtime_min_cosine,
        )
        self._encoder = check_fingerprint(
            enc,
            self.fingerprint,
            f"backbone {self.spec.get('name')!r} loaded on a worker",
            "The worker found other weights or settings than the driver; give every node "
            "the same weights files and library versions.",
        )
        return self._encoder

    def release(self) -> None:
        """Drop the encoder held in this process (the driver's copy, once workers have theirs)."""
        self._encoder = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_encoder"] = None
        return state

    def __repr__(self) -> str:
        return f"BackboneFactory({self.spec.get('kind')}:{self.spec.get('name')}, fingerprint={self.fingerprint})"
