"""torch's CPU thread count, set without importing torch.

Importing torch takes a second or more; a surrogate run never needs it. :func:`torch_threads` sets
the count at once when torch is already loaded, else the moment something imports it (a one-shot
import hook on ``sys.meta_path``), so a command can fix torch's threads up front and still only
pay for torch when a run trains a model.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any


def torch_threads(n: int) -> None:
    """``torch.set_num_threads(n)`` now if torch is loaded, else right after it is first imported
    (the last call wins)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(n)
        return
    for finder in sys.meta_path:
        if isinstance(finder, _SetThreadsOnImport):
            finder.n = n
            return
    sys.meta_path.insert(0, _SetThreadsOnImport(n))


class _SetThreadsOnImport(importlib.abc.MetaPathFinder):
    """Finds ``torch`` with the other finders and sets its threads once its module has run, then
    leaves ``sys.meta_path``. A lookup that does not import (``importlib.util.find_spec("torch")``,
    an optional-dependency check) leaves it in place for the real import."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._looking = False

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> Any:
        if name != "torch" or self._looking:
            return None
        self._looking = True  # the finders below locate torch as usual (this one answers None meanwhile)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._looking = False
        if spec is None or spec.loader is None:
            return spec
        run, finder = spec.loader.exec_module, self

        def exec_module(module: ModuleType) -> None:
            run(module)
            module.set_num_threads(finder.n)
            if finder in sys.meta_path:
                sys.meta_path.remove(finder)

        spec.loader.exec_module = exec_module  # this spec's own loader (its type, resources, source unchanged)
        return spec
