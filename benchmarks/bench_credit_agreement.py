"""Rank agreement of first-order credit with exact V3 on the library's real-mode scenarios (issue 17).

For each library scenario that runs a cooperative (``sim.CooperativeModel``) in real mode —
quickstart, free-riding, mechanism-duel, adversaries — its cooperative runs under its credit-paying
mechanism (revenue shares, α = 1) on the same seeds (same principals, data and initial model) with
``training.credit = "exact"`` and with ``"first_order"``. Per seed, Spearman's rank correlation
across principals of:

- **same trajectory** (the approximation alone): in the exact run, every TL step also computes the
  first-order credit of the same pieces at the same θ (``economics.valuation.one_step_first_order``
  beside the run's exact V3, excluded members zeroed as in the run); cumulative exact credit vs
  cumulative first-order credit per principal;
- **end to end** (feedback included): cumulative credit, and cumulative payments (the money each
  principal received over the run), of the exact run vs the first-order run. Strategies adapt to
  the payments, so the two runs drift apart in who joins with what; this measures what a user of
  the option sees, approximation and divergence together.

Then per scenario the mean over seeds with a 95% t-interval (scipy.stats; clipped to [−1, 1]).

Shortened to fit a few minutes on 2 cores: rounds capped at ``MAX_ROUNDS`` (the scenarios' own
rounds where fewer) and each principal's standalone model trained for ``STANDALONE_EPOCHS`` epochs
(the scenarios use 10; it only sets the outside option). Not covered: value-pluralism and
attribution-substrate run their own training loops (not ``training.credit``), cooperative and
equilibrium run in surrogate mode.

Run: ``python benchmarks/bench_credit_agreement.py`` (``--quick``: 2 seeds, 8 rounds); writes
``benchmarks/results_credit_agreement.txt`` (not with ``--quick``).
"""

from __future__ import annotations

import sys
import time
import tomllib
from collections import defaultdict
from pathlib import Path

import numpy as np
from goals import Goal, report
from scipy import stats

from economics.valuation import one_step_first_order
from learning.evaluation import ValidationGradient
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
MEASURES = (
    ("same", "credit", "same trajectory, cumulative credit"),
    ("end", "credit", "end to end, cumulative credit"),
    ("end", "payments", "end to end, cumulative payments"),
)


def scenario_config(name: str, credit: str, max_rounds: int) -> CooperativeConfig:
    """The scenario's cooperative (its TOML) under revenue shares, with ``training.credit`` set."""
    doc = tomllib.loads((LIBRARY / f"{name}.toml").read_text())["cooperative"]
    training = {**doc.get("training", {}), "credit": credit, "standalone_epochs": STANDALONE_EPOCHS}
    assert training.get("mode") == "real", f"{name} does not run in real mode"
    rounds = min(doc.get("rounds", 50), max_rounds)
    return CooperativeConfig.model_validate({**doc, "training": training, "mechanism": MECHANISM, "rounds": rounds})


def with_shadow_first_order(model: CooperativeModel) -> dict[int, np.ndarray]:
    """Make the exact run also accumulate first-order credit of the same pieces at the same θ.
    Returns, per backend index of a principal, [cumulative exact credit, cumulative first-order]."""
    backend = model.backend
    grad_at = ValidationGradient(backend.model, backend.loss_fn, backend.X_val, backend.y_val)
    pending: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # id of a round's credit array → (it, shadow)
    credit_step, train_round = backend._credit_step, backend.train_round
    cumulative: dict[int, np.ndarray] = defaultdict(lambda: np.zeros(2))

    def both(rec, credit, round_index, held):
        credit_step(rec, credit, round_index, held)
        _, shadow = pending.setdefault(id(credit), (credit, np.zeros_like(credit)))
        shadow += one_step_first_order(rec.filtered.cpu().numpy(), rec.lr, grad_at(rec.theta).cpu().numpy())

    def train(round_index, members, kinds):
        out = train_round(round_index, members, kinds)
        _, shadow = pending.pop(id(out.credit), (None, np.zeros_like(out.credit)))
        shadow[out.credit == 0.0] = 0.0  # members the guard excluded earn nothing (zero pieces: 0 in both)
        for p, exact, first in zip(members, out.credit, shadow, strict=True):
            cumulative[p.index] += (exact, first)
        return out

    backend._credit_step, backend.train_round = both, train
    return cumulative


def run(config: CooperativeConfig, seed: int, shadow: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Cumulative credit and payments per principal (agent id order), and with ``shadow`` the
    same-trajectory (exact, first-order) cumulative credit per principal."""
    model = CooperativeModel(config, rng=seed)
    cumulative = with_shadow_first_order(model) if shadow else None
    _, agents = model.run().frames()
    by_agent = agents.groupby("AgentID")[["credit", "money"]].sum().sort_index()
    pairs = None if cumulative is None else np.array([cumulative[i] for i in sorted(cumulative)])
    return by_agent["credit"].to_numpy(), by_agent["money"].to_numpy(), pairs


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(stats.spearmanr(a, b).statistic)


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval across seeds (a correlation: clipped to [−1, 1])."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2 or np.all(x == x[0]):
        return mean, mean, mean
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=mean, scale=stats.sem(x))
    return mean, max(float(lo), -1.0), min(float(hi), 1.0)


def measure(seeds: tuple[int, ...], max_rounds: int) -> tuple[dict, list[str], float]:
    per: dict[str, dict[tuple[str, str], list[float]]] = {}
    lines: list[str] = []
    start = time.perf_counter()
    for name in SCENARIOS:
        per[name] = defaultdict(list)
        exact_cfg, first_cfg = (scenario_config(name, c, max_rounds) for c in ("exact", "first_order"))
        for seed in seeds:
            credit_e, money_e, pairs = run(exact_cfg, seed, shadow=True)
            credit_f, money_f, _ = run(first_cfg, seed, shadow=False)
            rho = {
                ("same", "credit"): spearman(pairs[:, 0], pairs[:, 1]),
                ("end", "credit"): spearman(credit_e, credit_f),
                ("end", "payments"): spearman(money_e, money_f),
            }
            for key, value in rho.items():
                per[name][key].append(value)
            lines.append(
                f"  {name:15s} seed {seed}: same trajectory ρ credit {rho['same', 'credit']:+.3f}; end to end "
                f"ρ credit {rho['end', 'credit']:+.3f}, ρ payments {rho['end', 'payments']:+.3f} "
                f"({len(credit_e)} principals, {exact_cfg.rounds} rounds)"
            )
    return per, lines, time.perf_counter() - start


def goals(quick: bool = False) -> list[Goal]:
    seeds = SEEDS[:2] if quick else SEEDS
    max_rounds = 8 if quick else MAX_ROUNDS
    per, lines, seconds = measure(seeds, max_rounds)
    out: list[Goal] = []
    summary: list[str] = []
    for name in SCENARIOS:
        for kind, what, label in MEASURES:
            mean, lo, hi = interval(per[name][kind, what])
            note = f"95% t-interval [{lo:.3f}, {hi:.3f}] over {len(seeds)} seeds"
            out.append(Goal(SCRIPT, f"Spearman ρ first-order vs exact, {label}, {name}", mean, note=note))
            summary.append(f"{name:15s} {label:36s}: ρ = {mean:.3f}, 95% t-interval [{lo:.3f}, {hi:.3f}]")
    if not quick:
        header = (
            f"# python benchmarks/bench_credit_agreement.py, one run on the 2-core machine, {time.strftime('%F')}\n"
            f"# revenue shares α = 1; seeds {list(seeds)}; rounds capped at {max_rounds}; "
            f"standalone_epochs = {STANDALONE_EPOCHS}; {seconds:.0f} s\n"
            "# Spearman rank correlation across principals, first-order vs exact credit, mean over seeds\n"
            "# with a 95% t-interval (clipped to [-1, 1]); same trajectory: both credits of the exact run's\n"
            "# own steps; end to end: the exact run vs the first-order run (strategies adapt to payments)\n"
        )
        RESULTS.write_text(header + "\n".join(summary) + "\n# per seed\n" + "\n".join(lines) + "\n")
    return out


if __name__ == "__main__":
    report(goals("--quick" in sys.argv))
