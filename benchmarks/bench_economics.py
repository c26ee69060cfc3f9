"""Economics benchmarks, measured in one run:

- CGSV at N = 20 members, D = 100,000 parameters: ``cgsv_exact`` time / ``cgsv_approx`` time (issue 3
  asks for at most 100×); the approximation's, the exact method's and permutation sampling's own
  times as context;
- optimal contracts (first-moment problem), five settings: ``solve_first_moment`` time per setting
  (goal < 1 s each; the authors report 0.2 s to 7.5 s, the mixed setting 7.5 s), with the
  full-constraint solve's time and the menu's expected accuracy as context.

Each time is the median of a few repeats; BLAS runs on one thread. Run from the repository root:
``python benchmarks/bench_economics.py`` (about 15 s; ``--quick``: fewer repeats).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

from goals import Goal, report

# Single-threaded BLAS (unless the caller sets it): on a small shared machine, multithreaded
# OpenBLAS spin-waits under contention and timings become erratic by orders of magnitude. The
# variables only act before numpy is first imported; goals() also limits the loaded pools.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

SCRIPT = "bench_economics.py"

#: name: (costs per type, type probabilities, participants N)
CONTRACT_SETTINGS = {
    "two types, N=10, p1=0.5": ([0.02, 0.01], [0.5, 0.5], 10),
    "two types, N=100, p1=0.5": ([0.02, 0.01], [0.5, 0.5], 100),
    "five types, big-firm cooperation": ([0.2, 0.16, 0.12, 0.08, 0.04], [0.2] * 5, 10),
    "five types, small-party teamwork": ([1.0, 0.85, 0.7, 0.55, 0.4], [0.2] * 5, 10),
    "five types, mixed (big-and-small)": ([0.5, 0.4, 0.03, 0.02, 0.001], [0.2] * 5, 10),
}


def median_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_cgsv(n: int = 20, d: int = 100_000, repeats: int = 9) -> list[Goal]:
    import numpy as np

    from economics.valuation import cgsv_approx, cgsv_exact, cgsv_sampled

    rng = np.random.default_rng(0)
    U = rng.normal(size=(n, d))
    w = rng.uniform(0.5, 1.5, size=n)
    cgsv_exact(U, w)  # warm-up
    t_approx = median_time(lambda: cgsv_approx(U, w), repeats)
    t_exact = median_time(lambda: cgsv_exact(U, w), repeats)
    t_sampled = median_time(lambda: cgsv_sampled(U, w, rng=1), repeats)
    note = (
        f"exact {t_exact * 1e3:.1f} ms (2^N = {1 << n:,} coalitions), approx {t_approx * 1e3:.2f} ms, "
        f"sampled (eps = delta = 0.1: 150 permutations) {t_sampled * 1e3:.1f} ms; median of {repeats}"
    )
    return [
        Goal(SCRIPT, f"cgsv_exact / cgsv_approx time, N = {n}, D = {d:,}", t_exact / t_approx, "×", 100.0, note=note)
    ]


def bench_contracts(repeats: int = 3) -> list[Goal]:
    import numpy as np

    from economics.contracts import solve_first_moment, solve_full_constraints

    out = []
    for name, (c, p, n) in CONTRACT_SETTINGS.items():
        costs, probs = np.asarray(c, float), np.asarray(p, float)
        t_fm = median_time(lambda costs=costs, probs=probs, n=n: solve_first_moment(costs, probs, n), repeats)
        t_full = median_time(lambda costs=costs, probs=probs, n=n: solve_full_constraints(costs, probs, n), repeats)
        menu = solve_first_moment(costs, probs, n)
        ok = menu.success and menu.check().ok
        note = (
            f"full-constraint solve {t_full:.3f} s, E[a] = {menu.expected_accuracy:.5f}, "
            f"menu {'solved and checked' if ok else '**failed its check**'}; median of {repeats}"
        )
        out.append(Goal(SCRIPT, f"optimal contract solve (first moment), {name}", t_fm, "s", 1.0, note=note))
    return out


def goals(quick: bool = False) -> list[Goal]:
    from contextlib import nullcontext

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # scikit-learn's dependency; without it the environment variables above act alone
        limits = nullcontext()
    else:
        limits = threadpool_limits(1)
    with limits:
        if quick:
            return bench_cgsv(repeats=3) + bench_contracts(repeats=1)
        return bench_cgsv() + bench_contracts()


if __name__ == "__main__":
    report(goals("--quick" in sys.argv))
