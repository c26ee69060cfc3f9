"""Responsiveness of the dashboard at 100 principals, surrogate mode: steps per second of the duel
alone (two cooperatives stepping together) and with the page redrawn after every step (what play
does at a render interval of 1), rendered in-process by Solara. Prints one line each. Run from the
repository root (needs the dashboard extra):

    python benchmarks/bench_dashboard.py        # about 30 s
"""

from __future__ import annotations

import time
import warnings


def main(steps: int = 40) -> None:
    warnings.filterwarnings("ignore")
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
    print(f"duel alone, 100 principals × 2 mechanisms: {alone:.1f} steps/s")

    model = new_duel(start)
    _, rc = solara.render(solara.AppLayout(children=[Dashboard(model, start)]), handle_error=False)
    button = rc.find(v.Btn, children=["Step"]).widget
    for _ in range(5):
        button.click()
    began = time.perf_counter()
    for _ in range(steps):
        button.click()
    drawn = steps / (time.perf_counter() - began)
    print(f"with the first page's views redrawn after each step: {drawn:.1f} steps/s (goal ≥ 2: play stays responsive)")


if __name__ == "__main__":
    main()
