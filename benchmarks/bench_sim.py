"""Simulation speed and memory, measured in one run (issues 4 and 17):

- surrogate mode, 10,000 principals × 100 rounds: time per agent-step, model reporters only and
  with agent reporters (goal ≤ 5 µs, model reporters only);
- surrogate mode, 1,000,000 principals × 20 rounds in a fresh process: wall time of building the
  model and of the run, and the process's peak resident memory (goal < 8 GB);
- real mode, 20 members, digits, TL with value filters and α-power revenue shares: time per round,
  and the whole 50-round run (goal: under 2 minutes).

Run: ``python benchmarks/bench_sim.py`` (about 3 minutes; ``--quick``: 2,000 principals × 20 rounds,
100,000 principals × 20 rounds, 10 real rounds).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from goals import Goal, report

SCRIPT = "bench_sim.py"


def surrogate_config(n: int, rounds: int, collect: bool) -> dict:
    return {"rounds": rounds, "collect_agents": collect, "training": {"mode": "surrogate"},
            "mechanism": {"kind": "revenue_shares"}, "market": {"revenue_r0": 100.0 * n / 20},
            "population": {"n_principals": n,
                           "behaviours": {"honest": 0.7, "low_quality": 0.1, "free_rider": 0.2}}}


def surrogate(n: int, rounds: int, collect: bool) -> float:
    """Microseconds per agent-step (principal-round) of one surrogate run."""
    from sim import CooperativeModel

    model = CooperativeModel(surrogate_config(n, rounds, collect), rng=0)
    start = time.perf_counter()
    model.run()
    elapsed = time.perf_counter() - start
    return elapsed / (len(model.principals) * rounds) * 1e6


#: run in a fresh process, so that its peak memory is the large run's alone
LARGE = """
import json, resource, sys, time
sys.path.insert(0, {here!r})
from bench_sim import surrogate_config
from sim import CooperativeModel
t0 = time.perf_counter()
model = CooperativeModel(surrogate_config({n}, {rounds}, False), rng=0)
t1 = time.perf_counter()
model.run()
t2 = time.perf_counter()
frame, _ = model.frames()
print(json.dumps({{"build": t1 - t0, "run": t2 - t1, "principals": len(model.principals),
                  "participation": float(frame.participation.iloc[-1]),
                  "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}}))
"""


def large(n: int, rounds: int) -> dict:
    from pathlib import Path

    code = LARGE.format(here=str(Path(__file__).resolve().parent), n=n, rounds=rounds)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def real(rounds: int) -> tuple[float, float, float]:
    from sim import CooperativeModel

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


def goals(quick: bool = False) -> list[Goal]:
    n, rounds = (2000, 20) if quick else (10_000, 100)
    out = [Goal(SCRIPT, f"surrogate, {n:,} principals × {rounds} rounds, per agent-step", surrogate(n, rounds, False),
                "µs", 5.0),
           Goal(SCRIPT, "the same with agent reporters, per agent-step", surrogate(n, rounds, True), "µs")]
    big, big_rounds = (100_000, 20) if quick else (1_000_000, 20)
    res = large(big, big_rounds)
    out += [Goal(SCRIPT, f"surrogate, {big:,} principals × {big_rounds} rounds, peak memory", res["peak_gb"], "GB",
                 8.0, note=f"build {res['build']:.0f} s, run {res['run']:.0f} s "
                           f"({res['run'] / (res['principals'] * big_rounds) * 1e6:.1f} µs per agent-step)")]
    real_rounds = 10 if quick else 50
    setup, per_round, total = real(real_rounds)
    out.append(Goal(SCRIPT, f"real, 20 members, TL + value filters + revenue shares, {real_rounds} rounds", total, "s",
                    120.0, note=f"setup (standalone models) {setup:.1f} s, {per_round * 1e3:.0f} ms per round"))
    return out


if __name__ == "__main__":
    report(goals("--quick" in sys.argv))
