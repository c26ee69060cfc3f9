"""Loading a user's own code by name: ``"module:attribute"`` paths and entry points.

A scenario names a plug-in (a mechanism, a strategy, a model factory) in one of three ways:

- a built-in short name (``"cgsv"``);
- a short name an installed package registers in an entry-point group (``coopsim.mechanisms``,
  ``coopsim.strategies``), e.g. in its ``pyproject.toml``::

      [project.entry-points."coopsim.mechanisms"]
      pay_per_row = "my_pkg.mechs:PayPerRow"

- a ``"module:attribute"`` path (``"my_pkg.mechs:PayPerRow"``), the module importable from the
  working directory or the environment (``PYTHONPATH``, installed packages).

Every failure is an :class:`~coopsim.errors.InputError` naming the field, the value and what is
allowed, so that a bad name stops a run before anything is written.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from coopsim.errors import InputError

#: entry-point groups an installed package can register short names in
GROUPS = {"mechanism": "coopsim.mechanisms", "strategy": "coopsim.strategies"}


def is_path(name: str) -> bool:
    """Whether ``name`` is a ``module:attribute`` path (not a short name)."""
    return isinstance(name, str) and ":" in name


def discovered(group: str) -> dict[str, metadata.EntryPoint]:
    """Short names installed packages register in entry-point ``group``, sorted by name."""
    return {ep.name: ep for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name)}


def import_path(path: str, *, field: str) -> Any:
    """The object at ``"module:attribute"`` (``attribute`` may be dotted). The working directory is
    searched first, as ``python -m`` would, also when coopsim runs as a console script."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise InputError(field, path, "a 'module:attribute' path with both parts, e.g. 'my_pkg.mechs:PayPerRow'")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        raise InputError(field, path, f"an importable module: no module named {missing!r} (looked in the working "
                                      f"directory {cwd} and the environment; add its folder to PYTHONPATH or install "
                                      f"it)") from None
    except Exception as exc:  # the plug-in's own module failed while importing
        raise InputError(field, path, f"a module that imports: importing {module_name!r} raised "
                                      f"{type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            public = sorted(n for n in dir(module) if not n.startswith("_"))
            raise InputError(field, path, f"an attribute of module {module_name!r}: it has no {attribute!r} "
                                          f"(it defines: {', '.join(public[:20]) or 'nothing public'})")
        obj = getattr(obj, part)
    return obj


def resolve(name: Any, *, field: str, builtins: Mapping[str, Any], group: str | None = None) -> Any:
    """A built-in by short name, an installed plug-in by its entry-point name, or an object by its
    ``module:attribute`` path."""
    if not isinstance(name, str) or not name:
        raise InputError(field, name, _allowed(builtins, group))
    if name in builtins:
        return builtins[name]
    if is_path(name):
        return import_path(name, field=field)
    if group is not None:
        found = discovered(group).get(name)
        if found is not None:
            try:
                return found.load()
            except Exception as exc:
                raise InputError(field, name, f"an installed plug-in that loads: entry point {found.value!r} of "
                                              f"group {group!r} raised {type(exc).__name__}: {exc}") from exc
    raise InputError(field, name, _allowed(builtins, group))


def _allowed(builtins: Mapping[str, Any], group: str | None) -> str:
    installed = list(discovered(group)) if group else []
    parts = [f"a built-in name ({', '.join(builtins)})"]
    if group:
        parts.append(f"an installed plug-in's name ({', '.join(installed) or f'none registered in {group!r}'})")
    parts.append("a 'module:attribute' path such as 'my_pkg.mechs:PayPerRow'")
    return "one of: " + "; ".join(parts)
