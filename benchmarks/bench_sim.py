"""Simulation speed targets, measured in one run (issue 4):

- surrogate mode, 10,000 principals × 100 rounds: time per agent-step (goal ≤ 20 µs);
- real mode, 20 members, digits, TL with value filters and α-power revenue shares: time per round,
  and the whole 50-round run (goal: under 2 minutes).

Run: ``python benchmarks/bench_sim.py`` (``--quick``: 2,000 principals × 20 rounds, 10 real rounds).
"""

from __future__ import annotations

import sys
import time

from sim import CooperativeModel


def surrogate(n: int, rounds: int, collect: bool) -> float:
    cfg = {"rounds": rounds, "collect_agents": collect, "training": {"mode": "surrogate"},
           "mechanism": {"kind": "revenue_shares"}, "market": {"revenue_r0": 100.0 * n / 20},
           "population": {"n_principals": n, "behaviours": {"honest": 0.7, "low_quality": 0.1, "free_rider": 0.2}}}
    model = CooperativeModel(cfg, rng=0)
    start = time.perf_counter()
    model.run()
    elapsed = time.perf_counter() - start
    return elapsed / (len(model.principals) * rounds) * 1e6


def real(rounds: int) -> tuple[float, float, float]:
    cfg = {"rounds": rounds, "training": {"model": "multitask"},
           "mechanism": {"kind": "revenue_shares", "alpha": 1.5},
           "population": {"n_principals": 20, "behaviours": {"honest": 0.9, "free_rider": 0.1},
                          "value_profiles": [{"share": 0.3, "profile": {"reject_heads": ["risk"]}},
                                             {"share": 0.2, "profile": {"protect_classes": [3, 8], "max_norm": 1.0}}]}}
    start = time.perf_counter()
    model = CooperativeModel(cfg, rng=0)
    built = time.perf_counter()
    model.run()
    done = time.perf_counter()
    return built - start, (done - built) / rounds, done - start


def main() -> None:
    quick = "--quick" in sys.argv
    n, rounds = (2000, 20) if quick else (10_000, 100)
    for collect in (False, True):
        us = surrogate(n, rounds, collect)
        label = "with agent reporters" if collect else "model reporters only"
        print(f"surrogate, {n} principals × {rounds} rounds, {label}: {us:.1f} µs per agent-step (goal ≤ 20)")
    real_rounds = 10 if quick else 50
    setup, per_round, total = real(real_rounds)
    print(f"real, 20 members, TL + value filters + revenue shares: setup (standalone models) {setup:.1f} s, "
          f"{per_round * 1e3:.0f} ms per round, {real_rounds} rounds in {total:.1f} s (goal: 50 rounds < 120 s)")


if __name__ == "__main__":
    main()
