"""Rerun of the CGSV paper's Fig. 1: approximation quality and time of psi vs permutation sampling.

N random D-dimensional standard-normal vectors play u_1..u_N (unit weights). Against the exact CGSV
phi (:func:`economics.valuation.cgsv_exact`, which sums to nu(N) = 1) we measure the l1 and l2
errors and the time per call of

* psi = cos(u_i, u_N) (:func:`cgsv_approx`), raw, and rescaled to sum to nu(N) = 1
  ("the multiplicative factor can be normalised away", C Theorem 1): raw psi sums to about sqrt(N),
  so its l1 error is almost all that factor (about sqrt(N) - 1);
* the permutation-sampling (0.1, 0.1)-estimate phi_bar (K = 150 permutations), both as
  :func:`cgsv_sampled` computes it (Gram matrix) and naively from the vectors (as in the paper;
  its own permutations, so its l1 error is a second, independent sample of the same estimator);
* exact CGSV itself (Gram matrix plus 2**N coalition values).

Settings: N = 5..10 at D = 1,024, and D = 1,000..32,768 at N = 10; ``RUNS`` independent draws of
the vectors per setting. Every number reported is the mean over the runs with its 95% interval
from :func:`scenarios.stats.estimate` (expanded percentile bootstrap of the mean, seeded, so the
same runs always give the same interval). Timings are single calls (``time.perf_counter``) with
single-threaded BLAS, after one untimed warm-up call of each method; their intervals cover the
spread within one invocation only (on a shared machine, load drift between invocations can move
the sub-millisecond timings by more than that).

Prints three tables (l1 errors, l2 errors, times; ``mean [low, high]``) and writes
``figures/cgsv_approximation.png``: (a) error vs N, (b) time vs N, (c) error vs D, (d) time vs D.
Run from the repository root.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

# Single-threaded BLAS (unless the caller sets it): on a small shared machine, multithreaded
# OpenBLAS spin-waits under contention and timings become erratic by orders of magnitude.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from economics.shapley import n_permutations_for  # noqa: E402
from economics.valuation import cgsv_approx, cgsv_exact, cgsv_sampled  # noqa: E402
from scenarios.figures import OKABE_ITO, figure, save  # noqa: E402
from scenarios.stats import Estimate, estimate  # noqa: E402

RUNS = 20
LEVEL = 0.95
N_AGENTS = list(range(5, 11))
D_FIXED = 1024
DIMS = [1000, 2048, 4096, 8192, 16384, 32768]
N_FIXED = 10
K = n_permutations_for(0.1, 0.1)
FIGURE = Path(__file__).resolve().parents[1] / "figures" / "cgsv_approximation.png"

BLUE, ORANGE, PURPLE, VERMILLION, BLACK = OKABE_ITO[0], OKABE_ITO[1], OKABE_ITO[4], OKABE_ITO[3], OKABE_ITO[7]
# (key, legend label, colour, line style, marker, filled marker): colour and marker name the method,
# line style the norm (l1 solid, l2 dashed) in the error panels, so the figure also reads in greyscale
ERRORS = [("psin_l1", "ψ rescaled to sum 1, ℓ1", BLUE, "-", "o", True),
          ("psin_l2", "ψ rescaled to sum 1, ℓ2", BLUE, "--", "o", False),
          ("samp_l1", f"permutation sampling (K = {K}), ℓ1", VERMILLION, "-", "s", True),
          ("samp_l2", f"permutation sampling (K = {K}), ℓ2", VERMILLION, "--", "s", False),
          ("psi_l1", "ψ raw (not rescaled), ℓ1", ORANGE, ":", "^", True)]
TIMES = [("t_psi", "ψ (N cosines)", BLUE, "-", "o", True),
         ("t_samp", "permutation sampling, Gram matrix (ours)", VERMILLION, "--", "s", True),
         ("t_vec", "permutation sampling from the vectors (as the paper)", PURPLE, "-.", "D", True),
         ("t_exact", "exact CGSV, Gram matrix (ours)", BLACK, ":", "v", True)]


def sampled_from_vectors(U: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Permutation sampling computing each u_S from the vectors (O(K N D)), as the paper's baseline."""
    n = U.shape[0]
    u_n = U.sum(axis=0)
    norm_n = np.linalg.norm(u_n)
    phi = np.zeros(n)
    for _ in range(k):
        acc = np.zeros(U.shape[1])
        prev = 0.0
        for i in rng.permutation(n):
            acc += U[i]
            norm = np.linalg.norm(acc)
            val = float(acc @ u_n / (norm * norm_n)) if norm > 0 else 0.0
            phi[i] += val - prev
            prev = val
    return phi / k


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def one_setting(n: int, d: int, rng: np.random.Generator) -> dict[str, Estimate]:
    """Each measured quantity over ``RUNS`` independent draws, as a mean with its interval."""
    rows: dict[str, list[float]] = {}
    for _ in range(RUNS):
        U = rng.normal(size=(n, d))
        exact, t_exact = timed(lambda U=U: cgsv_exact(U))
        psi, t_psi = timed(lambda U=U: cgsv_approx(U))
        psi_norm = psi * (exact.sum() / psi.sum())
        seed = int(rng.integers(1 << 31))
        samp, t_samp = timed(lambda U=U, seed=seed: cgsv_sampled(U, rng=seed))
        samp_vec, t_vec = timed(lambda U=U, seed=seed: sampled_from_vectors(U, K, np.random.default_rng(seed)))
        for key, val in {
            "psi_l1": np.abs(psi - exact).sum(), "psi_l2": np.linalg.norm(psi - exact),
            "psin_l1": np.abs(psi_norm - exact).sum(), "psin_l2": np.linalg.norm(psi_norm - exact),
            "samp_l1": np.abs(samp - exact).sum(), "samp_l2": np.linalg.norm(samp - exact),
            "vec_l1": np.abs(samp_vec - exact).sum(), "psi_sum": psi.sum(),
            "t_exact": t_exact, "t_psi": t_psi, "t_samp": t_samp, "t_vec": t_vec,
        }.items():
            rows.setdefault(key, []).append(float(val))
    return {key: estimate(vals, level=LEVEL) for key, vals in rows.items()}


# ------------------------------------------------------------------------------------------ tables
def print_table(title: str, columns: list[tuple[str, str, str]], sweeps: list[list[tuple[int, int, dict]]],
                *, scale: float = 1.0) -> None:
    """One line per setting, ``mean [low, high]`` per column (key, heading, number format); a rule
    between the N sweep and the D sweep."""
    rows = [(n, d, [r[key].text(fmt, scale) for key, _, fmt in columns]) for sweep in sweeps for n, d, r in sweep]
    widths = [max(len(name), *(len(cells[j]) for _, _, cells in rows)) for j, (_, name, _) in enumerate(columns)]
    header = f"{'N':>3s} {'D':>6s} | " + "  ".join(f"{name:>{w}s}" for (_, name, _), w in zip(columns, widths,
                                                                                              strict=True))
    print(f"\n{title}")
    print(header)
    for sweep in sweeps:
        print("-" * len(header))
        for n, d, r in sweep:
            cells = [f"{r[key].text(fmt, scale):>{w}s}" for (key, _, fmt), w in zip(columns, widths, strict=True)]
            print(f"{n:3d} {d:6d} | " + "  ".join(cells))


# ------------------------------------------------------------------------------------------ figure
def draw(ax, xs: list[int], table: dict[int, dict[str, Estimate]], series, *, scale: float = 1.0) -> None:
    """Means as lines with markers, their intervals as error bars with caps."""
    for key, label, colour, style, marker, filled in series:
        ests = [table[x][key] for x in xs]
        mean = np.array([scale * e.mean for e in ests])
        err = np.array([[scale * (e.mean - e.ci_low) for e in ests], [scale * (e.ci_high - e.mean) for e in ests]])
        ax.errorbar(xs, mean, yerr=err, color=colour, linestyle=style, marker=marker, markersize=5, linewidth=1.5,
                    markerfacecolor=colour if filled else "white", markeredgewidth=1.2, capsize=3,
                    elinewidth=1.0, label=label)


def plot(by_n: dict[int, dict[str, Estimate]], by_d: dict[int, dict[str, Estimate]], n_runs: str) -> Path:
    fig, axes = figure(2, 2, width=11.5, height=8.6, layout="constrained")
    err_label = "ℓ1 / ℓ2 distance to exact CGSV values\n(unitless, log scale)"
    time_label = "time per call (ms, log scale)"
    n_label = f"number of agents N (D = {D_FIXED:,})"
    d_label = f"dimension D (N = {N_FIXED}, log2 scale)"
    panels = [(axes[0, 0], by_n, ERRORS, 1.0, "(a) error vs N", n_label, err_label),
              (axes[0, 1], by_n, TIMES, 1e3, "(b) time vs N", n_label, time_label),
              (axes[1, 0], by_d, ERRORS, 1.0, "(c) error vs D", d_label, err_label),
              (axes[1, 1], by_d, TIMES, 1e3, "(d) time vs D", d_label, time_label)]
    for ax, table, series, scale, title, xlabel, ylabel in panels:
        xs = list(table)
        draw(ax, xs, table, series, scale=scale)
        ax.set_yscale("log")
        ax.set_title(title, loc="left", fontweight="bold")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if table is by_d:
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [f"{x:,}" for x in xs])
            ax.minorticks_off()
        else:
            ax.set_xticks(xs)

    def header(text: str) -> Line2D:  # a legend row without a line: a group heading (or a blank)
        return Line2D([], [], linestyle="none", marker="none", label=text)

    err_handles, err_labels = axes[0, 0].get_legend_handles_labels()
    time_handles, time_labels = axes[0, 1].get_legend_handles_labels()
    headings = ["Errors vs exact CGSV (panels a, c)", "Time per call (panels b, d)"]
    # two columns (filled top to bottom): errors left, times right, below the panels
    handles = [header(headings[0]), *err_handles, header(headings[1]), *time_handles, header(" ")]
    labels = [headings[0], *err_labels, headings[1], *time_labels, " "]
    legend = fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=9, handlelength=3.2,
                        columnspacing=3.0)
    for text in legend.get_texts():
        if text.get_text() in headings:
            text.set_fontweight("bold")
    fig.suptitle("CGSV approximation (C Fig. 1 rerun): N random standard-normal updates "
                 "$u_i \\in \\mathbb{R}^D$, unit weights\n"
                 f"mean and {100 * LEVEL:.0f}% interval (error bars; expanded percentile bootstrap) over "
                 f"n = {n_runs} runs per point", fontsize=11)
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    return save(fig, FIGURE)


def main() -> None:
    start = time.perf_counter()
    warm = np.random.default_rng(0).normal(size=(5, 64))  # first calls pay imports and caches: not timed
    for fn in (cgsv_exact, cgsv_approx, cgsv_sampled):
        fn(warm)
    sampled_from_vectors(warm, 2, np.random.default_rng(0))
    rng = np.random.default_rng(2022)
    by_n = {n: one_setting(n, D_FIXED, rng) for n in N_AGENTS}
    by_d = {d: one_setting(N_FIXED, d, rng) for d in DIMS}
    sweeps = [[(n, D_FIXED, r) for n, r in by_n.items()], [(N_FIXED, d, r) for d, r in by_d.items()]]
    ns = sorted({e.n for sweep in sweeps for _, _, r in sweep for e in r.values()})
    n_runs = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"

    print(f"CGSV approximation study (C Fig. 1 rerun): mean [{100 * LEVEL:.0f}% interval] over n = {n_runs} runs "
          "(scenarios.stats.estimate).")
    print(f"psi~ = psi rescaled to sum 1; samp = permutation sampling, eps = delta = 0.1 (K = {K}), Gram matrix; "
          "samp(vec) = the same from the vectors (own permutations).")
    print_table("l1 error vs exact CGSV (unitless)",
                [("psi_l1", "psi (raw) l1", "{:.3f}"), ("psin_l1", "psi~ l1", "{:.5f}"),
                 ("samp_l1", "samp l1", "{:.4f}"), ("vec_l1", "samp(vec) l1", "{:.4f}")], sweeps)
    print_table("l2 error vs exact CGSV (unitless), and sum of raw psi (exact CGSV sums to 1)",
                [("psi_l2", "psi (raw) l2", "{:.3f}"), ("psin_l2", "psi~ l2", "{:.5f}"),
                 ("samp_l2", "samp l2", "{:.4f}"), ("psi_sum", "sum psi (raw)", "{:.3f}")], sweeps)
    print_table("time per call (ms)",
                [("t_psi", "t psi", "{:.3f}"), ("t_samp", "t samp", "{:.3f}"), ("t_vec", "t samp(vec)", "{:.2f}"),
                 ("t_exact", "t exact", "{:.3f}")], sweeps, scale=1e3)
    path = plot(by_n, by_d, n_runs)
    print(f"\nfigure written to {path} ({time.perf_counter() - start:.1f} s in all)")


if __name__ == "__main__":
    main()
