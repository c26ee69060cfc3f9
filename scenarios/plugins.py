"""What ``coopsim list`` shows of mechanisms and strategies: the built-ins and those installed
packages register (entry-point groups ``coopsim.mechanisms`` and ``coopsim.strategies``)."""

from __future__ import annotations

import inspect

from pydantic import BaseModel

from coopsim.plugins import GROUPS, discovered
from sim.mechanisms import BUILTINS as MECHANISMS
from sim.mechanisms import catalogue
from sim.strategies import BUILTIN_STRATEGIES, strategy_class


def settings_text(model: type[BaseModel]) -> str:
    """``name=default`` for each setting but ``kind``."""
    parts = [f"{name}={info.default!r}" for name, info in model.model_fields.items() if name != "kind"]
    return ", ".join(parts) or "(none)"


def _first_line(obj: object) -> str:
    """The first sentence of the docstring (its first paragraph, up to the first full stop)."""
    paragraph = " ".join((inspect.getdoc(obj) or "").strip().split("\n\n")[0].split())
    head, sep, _ = paragraph.partition(". ")
    return head + ("." if sep else "")


def mechanism_rows() -> list[tuple[str, str, str, str]]:
    """(name, source, summary, settings) for every built-in and installed mechanism."""
    rows = []
    for name, cls in catalogue().items():
        source = "built-in" if name in MECHANISMS else f"installed ({cls.__module__})"
        rows.append((name, source, cls.summary or _first_line(cls), settings_text(cls.Settings)))
    for name in discovered(GROUPS["mechanism"]):
        if name not in rows and all(r[0] != name for r in rows):
            rows.append((name, "installed, but does not load", "run coopsim check " + name, ""))
    return rows


def strategy_rows() -> list[tuple[str, str, str, str]]:
    """(name, source, first docstring line, settings) for every built-in and installed strategy."""
    knobs = {"best_response": "population.epsilon (refresh = ε/2)", "epsilon_greedy": "population.epsilon",
             "imitation": "population.imitation_rate"}
    rows = [(name, "built-in", _first_line(cls), knobs.get(name, "(none)"))
            for name, cls in BUILTIN_STRATEGIES.items()]
    for name in discovered(GROUPS["strategy"]):
        try:
            cls = strategy_class(name)
            rows.append((name, f"installed ({cls.__module__})", _first_line(cls), "(its own)"))
        except Exception as exc:  # an installed plug-in that fails to load is shown, not fatal
            rows.append((name, "installed, but does not load", str(exc), ""))
    return rows
