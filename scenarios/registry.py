"""The scenario registry: names → :class:`Scenario` (configuration class, ``run``, ``figures``).

How to add a scenario (the library discovers it; nothing else to edit):

1. Create ``scenarios/library/<module>.py`` defining

   - a configuration class deriving from :class:`scenarios.config.ScenarioConfig` (nested blocks
     derive from :class:`scenarios.config.Section`; every field has a default and a ``description``;
     add ``ge=``/``le=``/``Literal`` bounds so that bad values exit with code 2);
   - ``run(config, seed) -> ScenarioResult``: does the work; all randomness derives from ``seed``
     (``learning.seeding.derive_seed(seed, k)``; Mesa models get ``rng=derive_seed(seed, k)``). Its
     ``frame`` holds rows with ``variable``, ``value`` and optionally ``round``, ``agent`` and extra
     key columns; the runner stamps ``run_id``, ``seed`` and ``param.*`` columns;
   - ``figures(frame, summary, folder) -> list[Path]``: draws the default figures from the stored
     results only (so ``coopsim figures`` can regenerate them), through :mod:`scenarios.figures`;
   - ``SCENARIO = Scenario(name="my-scenario", description="one line", config=MyConfig, run=run,
     figures=figures)``. Name the module after the scenario (``my-scenario`` → ``my_scenario.py``):
     running a scenario then imports its module alone, not the whole library (any other name is
     still found, by importing every module).

2. Create ``scenarios/library/<module>.toml`` with ``scenario = "my-scenario"`` and the defaults
   written out (it is what users copy and edit; the tests check that it validates).

3. Add a reduced form to ``tests/scenarios`` (``--set`` overrides that run in a few seconds).

Sim-based scenarios (``quickstart``, ``free-riding``, ``mechanism-duel``) follow the same recipe:
``run`` builds ``sim.CooperativeModel(config, rng=derive_seed(seed, …))``, steps it and turns the
datacollector's frames into the long table.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.util
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from coopsim.errors import InputError
from scenarios.config import SCENARIO_KEY, ScenarioConfig, apply_overrides, read_toml, section_type, validate
from scenarios.result import ScenarioResult

RunFn = Callable[[Any, int], ScenarioResult]
FiguresFn = Callable[[pd.DataFrame, dict[str, Any], Path], list[Path]]


@dataclass(frozen=True)
class Scenario:
    """One entry of the library. ``headline`` lists dotted ``summary.json`` keys that sweeps compare
    across grid points (default: every top-level number)."""

    name: str
    description: str
    config: type[ScenarioConfig]
    run: RunFn
    figures: FiguresFn
    headline: tuple[str, ...] = ()
    defaults_path: Path | None = None

    def defaults(self) -> dict[str, Any]:
        """The library TOML's values (without the ``scenario`` key); ``{}`` when there is none."""
        if self.defaults_path is None or not self.defaults_path.is_file():
            return {}
        data = read_toml(self.defaults_path)
        data.pop(SCENARIO_KEY, None)
        return data


def _entry(module: Any) -> Scenario | None:
    """A library module's ``SCENARIO`` (its defaults file found beside it), or None."""
    scen = getattr(module, "SCENARIO", None)
    if not isinstance(scen, Scenario):
        return None
    if scen.defaults_path is None and getattr(module, "__file__", None):
        path = Path(module.__file__).with_suffix(".toml")
        scen = dataclasses.replace(scen, defaults_path=path if path.is_file() else None)
    return scen


def _discover() -> dict[str, Scenario]:
    import scenarios.library as lib

    found: dict[str, Scenario] = {}
    for info in sorted(pkgutil.iter_modules(lib.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        scen = _entry(importlib.import_module(f"scenarios.library.{info.name}"))
        if scen is not None:
            found[scen.name] = scen
    return found


_REGISTRY: dict[str, Scenario] | None = None


def registry() -> dict[str, Scenario]:
    """Every scenario of ``scenarios/library``, by name (discovered once: every module imported)."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _discover()
    return _REGISTRY


@functools.cache
def _load(name: str) -> Scenario | None:
    """The library scenario ``name`` from its own module alone (``free-riding`` →
    ``scenarios/library/free_riding.py``), so that running one scenario imports only what it needs
    (a surrogate cooperative never loads torch); None when no module is named so."""
    module = name.replace("-", "_")
    if not module.isidentifier() or module.startswith("_"):
        return None
    try:
        spec = importlib.util.find_spec(f"scenarios.library.{module}")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    scen = _entry(importlib.import_module(f"scenarios.library.{module}"))
    return scen if scen is not None and scen.name == name else None


def get(name: str) -> Scenario:
    """A scenario by name; an unknown name is bad input (exit 2). Only the scenario's own module is
    imported when it is named after the scenario; otherwise the whole library is searched."""
    if _REGISTRY is None and (scen := _load(name)) is not None:  # the whole library not loaded (yet)
        return scen
    scenarios = registry()
    if name not in scenarios:
        raise InputError("scenario", name, f"one of {sorted(scenarios)} or a path to a .toml scenario file")
    return scenarios[name]


def _merge(base: dict[str, Any], top: dict[str, Any], model: type | None) -> dict[str, Any]:
    """The user's file over the library defaults: a table that is a configuration section
    (a pydantic model) is merged key by key; any other value — a mapping such as
    ``behaviours = { honest = 1.0 }`` included — replaces the default whole."""
    out = dict(base)
    fields = getattr(model, "model_fields", {})
    for key, value in top.items():
        section = section_type(fields[key].annotation) if key in fields else None
        if isinstance(value, dict) and isinstance(out.get(key), dict) and section is not None:
            out[key] = _merge(out[key], value, section)
        else:
            out[key] = value
    return out


def layered(document: dict[str, Any], where: str = "the scenario file") -> tuple[Scenario, dict[str, Any]]:
    """A scenario document (what a scenario TOML holds: ``scenario = name`` and fields) over its
    library defaults: the scenario and the merged (not yet validated) data. The one path from a
    document to a configuration: ``coopsim run FILE`` and the studies' trials (``coopsim tune``, whose
    ``best.toml`` files are such documents) both go through it."""
    data = dict(document)
    name = data.pop(SCENARIO_KEY, None)
    if not isinstance(name, str):
        raise InputError(SCENARIO_KEY, name, f"a scenario name in {where} (one of {sorted(registry())})")
    scen = get(name)
    return scen, _merge(scen.defaults(), data, scen.config)


def resolve_document(document: dict[str, Any], label: str) -> Resolved:
    """A scenario document (see :func:`layered`) → validated configuration."""
    scen, data = layered(document)
    return Resolved(scen, validate(scen.config, data), label)


@dataclass(frozen=True)
class Resolved:
    """A scenario with its validated configuration and a label for default output folders."""

    scenario: Scenario
    config: ScenarioConfig
    label: str


def resolve(target: str, overrides: list[str] | tuple[str, ...] = (), seed: int | None = None, *,
            assignments: dict[str, Any] | None = None) -> Resolved:
    """Scenario name or TOML path → validated configuration.

    Layers, later wins: the library TOML of the scenario, the user's file (if a path was given; its
    ``scenario`` key names the scenario), ``assignments`` (dotted keys, from sweeps), ``--set``
    overrides, ``--seed``.
    """
    if target.endswith(".toml") or Path(target).is_file():
        scen, data = layered(read_toml(Path(target)), where=target)
        label = Path(target).stem
    else:
        scen = get(target)
        label = scen.name
        data = scen.defaults()
    data = apply_overrides(data, overrides, seed, assignments=assignments)
    return Resolved(scen, validate(scen.config, data), label)
