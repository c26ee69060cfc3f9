"""Responsiveness of the dashboard at 100 principals, surrogate mode: steps per second of the duel
alone (two cooperatives stepping together; context) and with the page redrawn after every step
(what play does at a render interval of 1; goal ≥ 2 steps/s, so play stays responsive), rendered
in-process by Solara. Run from the repository root (needs the dashboard extra):

    python benchmarks/bench_dashboard.py           # 40 timed steps each, about 30 s
    python benchmarks/bench_dashboard.py --quick   # 10 timed steps each
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
import warnings

from goals import Goal, report

SCRIPT = "bench_dashboard.py"


def measure(steps: int = 40) -> tuple[float, float]:
    """(duel steps/s alone, steps/s with the first page's views redrawn after each step)."""
    import ipyvuetify as v
    import solara

    from scenarios.dashboard.app import Dashboard, initial_settings, new_duel

    start = {**initial_settings(), "n_principals": 100}
    duel = new_duel(start)
    for _ in range(5):  # warm up (the first rounds try every action)
        duel.step()
    began = time.perf_counter()
    for _ in range(steps):
        duel.step()
    alone = steps / (time.perf_counter() - began)

    model = new_duel(start)
    with contextlib.redirect_stdout(io.StringIO()):  # outside a kernel the app bar's portals print their reprs
        _, rc = solara.render(solara.AppLayout(children=[Dashboard(model, start)]), handle_error=False)
    button = rc.find(v.Btn, children=["Step"]).widget
    for _ in range(5):
        button.click()
    began = time.perf_counter()
    for _ in range(steps):
        button.click()
    drawn = steps / (time.perf_counter() - began)
    return alone, drawn


def goals(quick: bool = False) -> list[Goal]:
    steps = 10 if quick else 40
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone, drawn = measure(steps)
    return [
        Goal(
            SCRIPT,
            "dashboard duel alone, 100 principals × 2 mechanisms (surrogate)",
            alone,
            "steps/s",
            note=f"{steps} steps",
        ),
        Goal(
            SCRIPT,
            "the same with the first page's views redrawn after each step",
            drawn,
            "steps/s",
            2.0,
            higher_is_better=True,
            note=f"{steps} steps; play stays responsive at ≥ 2",
        ),
    ]


if __name__ == "__main__":
    report(goals("--quick" in sys.argv))
