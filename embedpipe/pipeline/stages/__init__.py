"""The built-in stage kinds, one module each; importing a module registers its kind.

Each module decorates its ``run`` function with :func:`embedpipe.pipeline.kinds.register_kind`
and keeps heavy imports inside its functions, so importing them all stays cheap. A new kind is
one new module here (named in :data:`BUILTIN`) or a plugin in the ``embedpipe.stages``
entry-point group.
"""

from __future__ import annotations

import importlib

#: The built-in kinds' modules, in the order messages and docs list them.
BUILTIN = ("encode", "train", "evaluate", "index", "finetune", "compare", "curate", "report")

for _name in BUILTIN:
    importlib.import_module(f"{__name__}.{_name}")
