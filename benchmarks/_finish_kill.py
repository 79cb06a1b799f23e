"""Run the embedpipe CLI and SIGKILL it at one step of an encode's finish (benchmarks/faults.py).

    python benchmarks/_finish_kill.py STEP embedpipe-args...

STEP: ``sort`` (inside the row sort, its temporary file half written), ``rename`` (the sorted
file complete, just before it replaces the store), ``renamed`` (just after), ``reopen`` (the
store just reopened outside SWMR mode to be marked complete), ``complete`` (``complete=1``
written, before the file is closed). The process exits 0 when the step never came (nothing
to kill), so the caller can tell a miss from a kill (-9).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _patch(step: str) -> None:
    import h5py

    from embedpipe.store import reorder, writer

    state = {"sorted": False}
    original_sort = reorder.sort_rows
    original_fixed = reorder._permute_fixed

    def sort_rows(path: Any) -> bool:
        done = original_sort(path)
        state["sorted"] = True
        return done

    def permute_fixed(*a: Any, **k: Any) -> None:
        original_fixed(*a, **k)
        if step == "sort":
            _die()

    class Replace:
        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        @staticmethod
        def replace(src: Any, dst: Any) -> None:
            if step == "rename":
                _die()
            os.replace(src, dst)
            if step == "renamed":
                _die()

    class File(h5py.File):
        def __init__(self, *a: Any, **k: Any) -> None:
            super().__init__(*a, **k)
            if state["sorted"] and self.mode == "r+" and step == "reopen":
                _die()

        def __exit__(self, *exc: Any) -> None:
            if state["sorted"] and self.mode == "r+" and step == "complete":
                if int(self.attrs.get("complete", 0)) == 1:
                    _die()
            super().__exit__(*exc)

    class H5:
        def __getattr__(self, name: str) -> Any:
            return File if name == "File" else getattr(h5py, name)

    reorder.sort_rows = sort_rows
    reorder._permute_fixed = permute_fixed
    reorder.os = Replace()  # type: ignore[assignment]
    writer.h5py = H5()  # type: ignore[assignment]


def main() -> None:
    step, args = sys.argv[1], sys.argv[2:]
    _patch(step)
    from embedpipe.cli import main as cli

    sys.argv = ["embedpipe", *args]
    cli()


if __name__ == "__main__":
    main()
