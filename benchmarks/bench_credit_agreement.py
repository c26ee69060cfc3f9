"""Rank agreement of first-order credit with exact V3 on the library's real-mode scenarios (issue 17).

For each library scenario that runs a cooperative (``sim.CooperativeModel``) in real mode —
quickstart, free-riding, mechanism-duel, adversaries — its cooperative runs under its credit-paying
mechanism (revenue shares, α = 1) twice per seed: ``training.credit = "exact"`` and
``"first_order"``, same seed, so the same principals, data and initial model. Per seed it reports
Spearman's rank correlation across principals of

- cumulative credit (the sum over the run of each principal's per-round credit), and
- cumulative payments (the money each principal received over the run),

then per scenario the mean over seeds with a 95% t-interval (scipy.stats; clipped to [−1, 1]). Strategies adapt to the
payments, so after the first rounds the two runs may differ in who joins with what: the agreement
is end to end, feedback included, not a per-step comparison.

Shortened to fit a few minutes on 2 cores: rounds capped at ``MAX_ROUNDS`` (the scenarios' own
rounds where fewer) and each principal's standalone model trained for ``STANDALONE_EPOCHS`` epochs
(the scenarios use 10; it only sets the outside option). Not covered: value-pluralism and
attribution-substrate run their own training loops (not ``training.credit``), cooperative and
equilibrium run in surrogate mode.

Run: ``python benchmarks/bench_credit_agreement.py`` (``--quick``: 2 seeds, fewer rounds); writes
``benchmarks/results_credit_agreement.txt`` (not with ``--quick``).
"""

from __future__ import annotations

import sys
import time
import tomllib
from pathlib import Path

import numpy as np
from goals import Goal, report
from scipy import stats

from sim import CooperativeModel
from sim.config import CooperativeConfig

SCRIPT = "bench_credit_agreement"
LIBRARY = Path(__file__).resolve().parents[1] / "scenarios" / "library"
SCENARIOS = ("quickstart", "free_riding", "mechanism_duel", "adversaries")
MECHANISM = {"kind": "revenue_shares", "alpha": 1.0}
SEEDS = (0, 1, 2, 3, 4)
MAX_ROUNDS = 30
STANDALONE_EPOCHS = 3
RESULTS = Path(__file__).resolve().parent / "results_credit_agreement.txt"


def scenario_config(name: str, credit: str, max_rounds: int) -> CooperativeConfig:
    """The scenario's cooperative (its TOML) under revenue shares, with ``training.credit`` set."""
    doc = tomllib.loads((LIBRARY / f"{name}.toml").read_text())["cooperative"]
    training = {**doc.get("training", {}), "credit": credit, "standalone_epochs": STANDALONE_EPOCHS}
    assert training.get("mode") == "real", f"{name} does not run in real mode"
    return CooperativeConfig.model_validate({**doc, "training": training, "mechanism": MECHANISM,
                                             "rounds": min(doc.get("rounds", 50), max_rounds)})


def totals(config: CooperativeConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative credit and payments per principal (agent id order) over one run."""
    _, agents = CooperativeModel(config, rng=seed).run().frames()
    by_agent = agents.groupby("AgentID")[["credit", "money"]].sum().sort_index()
    return by_agent["credit"].to_numpy(), by_agent["money"].to_numpy()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a, b).statistic)


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval across seeds."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2 or np.all(x == x[0]):
        return mean, mean, mean
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=mean, scale=stats.sem(x))
    return mean, max(float(lo), -1.0), min(float(hi), 1.0)  # a correlation lies in [−1, 1]


def measure(seeds: tuple[int, ...], max_rounds: int) -> tuple[dict[str, dict[str, list[float]]], list[str], float]:
    per: dict[str, dict[str, list[float]]] = {}
    lines: list[str] = []
    start = time.perf_counter()
    for name in SCENARIOS:
        per[name] = {"credit": [], "payments": []}
        exact_cfg, first_cfg = (scenario_config(name, c, max_rounds) for c in ("exact", "first_order"))
        for seed in seeds:
            credit_e, money_e = totals(exact_cfg, seed)
            credit_f, money_f = totals(first_cfg, seed)
            rho_c, rho_m = spearman(credit_e, credit_f), spearman(money_e, money_f)
            per[name]["credit"].append(rho_c)
            per[name]["payments"].append(rho_m)
            lines.append(f"  {name:15s} seed {seed}: ρ credit {rho_c:+.3f}, ρ payments {rho_m:+.3f} "
                         f"({len(credit_e)} principals, {exact_cfg.rounds} rounds)")
    return per, lines, time.perf_counter() - start


def goals(quick: bool = False) -> list[Goal]:
    seeds = SEEDS[:2] if quick else SEEDS
    max_rounds = 8 if quick else MAX_ROUNDS
    per, lines, seconds = measure(seeds, max_rounds)
    out: list[Goal] = []
    summary: list[str] = []
    for name in SCENARIOS:
        for what in ("credit", "payments"):
            mean, lo, hi = interval(per[name][what])
            note = f"95% t-interval [{lo:.3f}, {hi:.3f}] over {len(seeds)} seeds"
            out.append(Goal(SCRIPT, f"Spearman ρ first-order vs exact, cumulative {what}, {name}", mean, note=note))
            summary.append(f"{name:15s} cumulative {what:8s}: ρ = {mean:.3f}, 95% t-interval [{lo:.3f}, {hi:.3f}]")
    if not quick:
        RESULTS.write_text(
            f"# python benchmarks/bench_credit_agreement.py, one run on the 2-core machine, {time.strftime('%F')}\n"
            f"# revenue shares α = 1; seeds {list(seeds)}; rounds capped at {max_rounds}; "
            f"standalone_epochs = {STANDALONE_EPOCHS}; {seconds:.0f} s\n"
            "# Spearman rank correlation across principals, first-order vs exact credit, same seed;\n"
            "# mean over seeds with a 95% t-interval\n"
            + "\n".join(summary) + "\n# per seed\n" + "\n".join(lines) + "\n")
    return out


if __name__ == "__main__":
    report(goals("--quick" in sys.argv))
