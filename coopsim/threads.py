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
    """Finds ``torch`` with the other finders, then sets its threads once its module has run."""

    def __init__(self, n: int) -> None:
        self.n = n

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> Any:
        if name != "torch":
            return None
        sys.meta_path.remove(self)  # one shot; the finders below locate torch as usual
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        run, n = spec.loader.exec_module, self.n

        def exec_module(module: ModuleType) -> None:
            run(module)
            module.set_num_threads(n)

        spec.loader.exec_module = exec_module  # this spec's own loader (its type, resources, source unchanged)
        return spec
