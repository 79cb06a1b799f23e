"""The built-in stage kinds, one module each; importing a module registers its kind.

Each module decorates its ``run`` function with
:func:`embedpipe.pipeline.kinds.register_stage_kind` and keeps heavy imports inside its
functions, so importing them all stays cheap. A new kind is one new module here (imported
below, in the order messages and docs list the kinds) or a plugin in the ``embedpipe.stages``
entry-point group. :data:`~embedpipe.pipeline.kinds.STAGE_KINDS` imports this package on its
first look-up.
"""

# isort: skip_file
from __future__ import annotations

from . import encode, train, evaluate, index, finetune, compare, curate, report  # noqa: F401
