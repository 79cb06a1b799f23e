"""The ``zero_shot`` head: class names and prompt templates, embedded by the text tower of a
CLIP-style dual encoder, are the classifier's weights.

``fit`` learns nothing from the features: it records the classes and embeds, for each class,
every template filled with the class's name (``"a photo of a {}."``), averaging the
L2-normalised text embeddings. ``predict`` is the class whose text embedding has the highest
cosine with the (image) features. As a registered head, ``evaluate`` compares it side by side
with linear probes trained on the same features (use ``preprocess=None``: standardising the
features would change their cosines to the text embeddings).

Importing this module (listing heads) imports neither scikit-learn nor torch: the estimator,
:class:`ZeroShotClassifier`, lives in ``embedpipe.heads._zero_shot_estimator``.

Examples
--------
>>> from embedpipe.heads.zero_shot import ZeroShotClassifier
>>> ZeroShotClassifier("clip:my-clip-folder", class_names=["cat", "dog"]).templates
('a photo of a {}.',)
"""

from __future__ import annotations

from typing import Any

from .registry import register_head

register_head(
    "zero_shot",
    "embedpipe.heads._zero_shot_estimator:ZeroShotClassifier",
    "zero-shot: class-name prompts embedded by a dual encoder's text tower "
    "(text_encoder=clip:..., class_names=[...], preprocess none)",
    needs=("text_encoder",),
)


def __getattr__(name: str) -> Any:
    if name in ("ZeroShotClassifier", "DEFAULT_TEMPLATES"):
        from . import _zero_shot_estimator

        return getattr(_zero_shot_estimator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
