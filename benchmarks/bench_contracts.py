"""Optimal contracts for many participants (issue 17, goal 3): ``solve_first_moment`` time against N.

Measures, in one run, the first-moment problem with K = 5 types (unit costs linspace(0.2, 0.04, 5),
p = 0.2 each, the default generalisation-bound accuracy) for N = 2, 4, 8, ..., 1024 participants:

- with the default method, which computes the expectations over the type draws from the
  distribution of the pooled data (convolution, ``economics.contracts.pooled``);
- with ``method="enumeration"`` (every one of the C(N+4, 4) outcomes, the reference) where that is
  feasible: N = 2, ..., 32 and 40 (N = 100 takes minutes; N = 256 would need 1.9e8 outcomes);
- the largest relative difference between the two menus (m, t, expected accuracy, each relative
  to its largest entry) over the N both solve.

Goals: K = 5, N = 1024 solved in at most 10 s; the two methods agree within 1e-8. The figure
``figures/bench_contracts.png`` shows solve time against N (log-log) for both methods and the 10 s
goal. Times are single runs (the median of three where a run takes under a second), with
single-threaded BLAS.

Run from the repository root: ``python benchmarks/bench_contracts.py`` (about half a minute;
``--quick``: enumeration only up to N = 16, no figure).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

# Single-threaded BLAS (unless the caller sets it): on a small shared machine, multithreaded
# OpenBLAS spin-waits under contention and timings become erratic.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from goals import Goal, report  # noqa: E402

from economics.contracts import ContractMenu, solve_first_moment  # noqa: E402

SCRIPT = "bench_contracts.py"
FIGURE = Path(__file__).resolve().parents[1] / "figures" / "bench_contracts.png"
COSTS = np.linspace(0.2, 0.04, 5)
PROBS = np.full(5, 0.2)
GOAL_SECONDS = 10.0
GOAL_AGREEMENT = 1e-8
FAST_N = [2**k for k in range(1, 11)]  # 2 ... 1024
ENUM_N = [2, 4, 8, 16, 32, 40]


def timed_solve(n: int, method: str) -> tuple[float, ContractMenu]:
    """Seconds of one ``solve_first_moment`` (median of three when one run takes under a second)."""
    times, menu = [], None
    for _ in range(3):
        start = time.perf_counter()
        menu = solve_first_moment(COSTS, PROBS, n, method=method)
        times.append(time.perf_counter() - start)
        if times[0] >= 1.0:
            break
    assert menu is not None
    return statistics.median(times), menu


def difference(a: ContractMenu, b: ContractMenu) -> float:
    """Largest relative difference of m, t and the expected accuracy (each relative to its largest entry)."""
    pairs = [(a.m, b.m), (a.t, b.t), (np.array([a.expected_accuracy]), np.array([b.expected_accuracy]))]
    return max(float(np.max(np.abs(x - y)) / max(float(np.max(np.abs(y))), 1e-300)) for x, y in pairs)


def measure(quick: bool) -> dict[str, dict[int, float] | float]:
    enum_n = [n for n in ENUM_N if n <= 16] if quick else ENUM_N
    fast_t, enum_t, diffs, fast_menus = {}, {}, {}, {}
    for n in sorted(set(FAST_N) | set(enum_n)):
        fast_t[n], fast_menus[n] = timed_solve(n, "convolution")
        ok = fast_menus[n].success and fast_menus[n].check().ok
        line = f"N = {n:5d}: convolution {fast_t[n]:8.3f} s (menu valid: {ok})"
        if n in enum_n:
            enum_t[n], exact = timed_solve(n, "enumeration")
            diffs[n] = difference(fast_menus[n], exact)
            line += f", enumeration {enum_t[n]:8.3f} s, max relative difference {diffs[n]:.2e}"
        print(line, flush=True)
    return {
        "fast": fast_t,
        "enum": enum_t,
        "diff": diffs,
        "max_diff": max(diffs.values()),
        "valid_1024": float(fast_menus[1024].success and fast_menus[1024].check().ok),
    }


def plot(res: dict) -> Path:
    from scenarios.figures import OKABE_ITO, figure, save

    fig, axes = figure(width=7.0, height=4.6)
    ax = axes[0, 0]
    fast, enum = res["fast"], res["enum"]
    nf = sorted(n for n in fast if n in FAST_N)
    ax.plot(nf, [fast[n] for n in nf], "o-", color=OKABE_ITO[0], label="convolution of the pooled-data distribution")
    ne = sorted(enum)
    ax.plot(ne, [enum[n] for n in ne], "s--", color=OKABE_ITO[3], label="enumeration of all C(N+4, 4) outcomes")
    ax.axhline(GOAL_SECONDS, color=OKABE_ITO[7], linestyle=":", linewidth=1.2, label="goal for N = 1024: 10 s")
    ax.annotate(
        f"N = 1024: {fast[1024]:.1f} s",
        (1024, fast[1024]),
        textcoords="offset points",
        xytext=(0, 12),
        ha="center",
        fontsize=9,
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    low = min(min(fast.values()), min(enum.values()))
    ax.set_ylim(low / 2, 4 * GOAL_SECONDS)
    ax.set_xticks(FAST_N, [str(n) for n in FAST_N])
    ax.set_xlabel("participants N (K = 5 cost types, p = 0.2 each)")
    ax.set_ylabel("solve_first_moment time (s)")
    ax.set_title(
        "Optimal contracts (first-moment problem): solve time against N\n"
        f"menus of both methods agree within {res['max_diff']:.0e} (relative) where both run",
        fontsize=10,
    )
    ax.legend(loc="lower right", fontsize=8)
    return save(fig, FIGURE)


def goals(quick: bool = False) -> list[Goal]:
    res = measure(quick)
    if not quick:
        print(f"figure: {plot(res)}", flush=True)
    last = max(res["enum"])
    out = [
        Goal(
            SCRIPT,
            "K = 5, N = 1024 solve time",
            res["fast"][1024],
            "s",
            GOAL_SECONDS,
            note=f"convolution; menu valid: {bool(res['valid_1024'])}; C(1028, 4) = 4.6e10 outcomes not enumerated",
        ),
        Goal(
            SCRIPT,
            f"max relative difference vs enumeration (N ≤ {last})",
            res["max_diff"],
            "",
            GOAL_AGREEMENT,
            note="m, t and E[a] of the menus solved both ways",
        ),
        Goal(
            SCRIPT,
            f"K = 5, N = {last} solve time by enumeration",
            res["enum"][last],
            "s",
            note=f"convolution: {res['fast'][last]:.2f} s",
        ),
    ]
    return out


if __name__ == "__main__":
    report(goals("--quick" in sys.argv))
