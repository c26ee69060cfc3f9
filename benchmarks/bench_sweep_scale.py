"""How a sweep scales out (issue 17, goal 4): one 48-run surrogate sweep with 1 and 2 local joblib
workers and on a local Dask cluster (a scheduler and 2 single-threaded worker processes on
127.0.0.1); goal: ≥ 1.8× faster at 2 workers than at 1, with joblib and with Dask.

The sweep: ``free-riding`` in surrogate mode, 20,000 principals, 100 rounds, one mechanism per grid
point (equal split, revenue shares α=1, CGSV β=1, contracts) × 12 repeats = 48 runs of about 0.7 to
2 s each on one core (agent-level rows are off at that size, as by default). The same grid with 400
principals (agent-level rows kept, as by default) is measured beside it, with joblib only and
without a goal: its runs take 0.2–0.5 s, and a sweep of such runs is bound by what does not
parallelise. (The goal's sweep had 400 principals when the issue was filed and its runs took 1–2.5
s; reading agent rows from columns made them 4× faster, so the population was raised to keep runs of
that length.) Each configuration runs ``coopsim sweep`` as a user would, in a fresh process and a
fresh output folder (nothing is resumed); the wall time therefore includes what does not
parallelise: starting Python and importing the library (about 2–3 s per process here: a surrogate
sweep never imports torch), planning (every run validated), storing the run files as they arrive,
the combine step (``results.parquet``, ``runs.parquet``, the summary) and the figures. Two local
workers are the coordinating process itself and one helper process, which starts first and imports
the library while the coordinator imports and plans. The Dask cluster is started before the clock
starts (a user's cluster is already running), its workers as the README starts them (the library
preloaded, Dask's profiler off, its event-loop tick at 200 ms). Every configuration must finish all
its runs with the same numbers (seeds depend only on the plan, never on scheduling). Each wall time
is broken down by the sweep's own ``timing`` (summary.json: planning, the runs, combining, figures),
and the runs phase's speed-up is printed beside the whole sweep's: the phases that do not
parallelise bound the whole sweep's speed-up. Two rows say what bounds the runs phase itself: how
much slower a run is when two run at once (from the runs' own times), and how much work two
CPU-bound processes do at once against one alone on this machine (a pure-Python loop: 2 where the
two cores share nothing). Run from the
repository root:

    python benchmarks/bench_sweep_scale.py            # about 5 minutes on 2 cores
    python benchmarks/bench_sweep_scale.py --quick    # 12 runs per sweep: about 1.5 minutes
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from goals import Goal, report

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "bench_sweep_scale.py"
COOPSIM = [sys.executable, "-c", "from scenarios.cli import main; main()"]
TARGET = 1.8

SWEEP = """
scenario = "free-riding"
seed = 0
repeats = {repeats}
[base]
replicates = 1
"cooperative.rounds" = 100
"cooperative.training.mode" = "surrogate"
"cooperative.population.n_principals" = {principals}
[grid]
mechanisms = [
    [{{ label = "equal split", mechanism = {{ kind = "equal_split" }} }}],
    [{{ label = "revenue shares α=1", mechanism = {{ kind = "revenue_shares", alpha = 1.0 }} }}],
    [{{ label = "CGSV β=1", mechanism = {{ kind = "cgsv", beta = 1.0 }} }}],
    [{{ label = "contracts", mechanism = {{ kind = "contracts" }} }}],
]
"""


def sweep_once(sweep_file: Path, out: Path, *options: str) -> dict:
    """``coopsim sweep`` in a fresh process into the empty folder ``out``: wall seconds, the runs'
    own seconds (sum over runs, from runs.parquet) and the summary."""
    import pandas as pd

    started = time.perf_counter()
    done = subprocess.run(
        [*COOPSIM, "sweep", str(sweep_file), "--out", str(out), "--no-progress", *options],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"coopsim sweep {' '.join(options)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    runs = pd.read_parquet(out / "runs.parquet", columns=["seconds"])
    return {"seconds": seconds, "runs_seconds": float(runs["seconds"].sum()), "summary": summary}


def dask_sweep(sweep_file: Path, out: Path, workers: int) -> dict:
    """The same sweep on a fresh local Dask cluster: ``workers`` single-threaded worker processes,
    started as the README starts a cluster's workers: ``--preload scenarios.dask_preload`` (the
    library imported when a worker starts, before the sweep's clock) and Dask's statistical profiler
    off (``distributed.worker.profile.enabled``: it samples every running task's stack every 10 ms
    under the GIL, which made these runs about 16% slower) and the event-loop tick of every server
    at 200 ms instead of 20 ms (``distributed.admin.tick.interval``: each tick takes the GIL from the
    running task; with it the runs phase took 10–15% longer here)."""
    import dask
    from distributed import LocalCluster

    warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)
    quiet = {"distributed.worker.profile.enabled": False, "distributed.admin.tick.interval": "200ms"}
    with dask.config.set(quiet), LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        silence_logs=logging.ERROR,
        preload=["scenarios.dask_preload"],
    ) as cluster:
        return sweep_once(sweep_file, out, "--scheduler", cluster.scheduler_address)


def _results(summary: dict) -> dict:
    return {r["run_id"]: r["metrics"] for r in summary["runs"]}


SPIN = """
import time
start, n = time.perf_counter(), 0
while time.perf_counter() - start < {seconds}:
    sum(range(10_000))
    n += 1
print(n)
"""


def machine_ceiling(seconds: float = 4.0) -> Goal:
    """The most any two-worker speed-up can be on this machine: the work two CPU-bound Python
    processes do at once, over what one does alone (2 where the two cores share nothing).
    Two virtual cores that share a physical one, or a host busy elsewhere, give less."""
    def spin(n: int) -> list[int]:
        procs = [subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=seconds)], stdout=subprocess.PIPE,
                                  text=True) for _ in range(n)]
        return [int(p.communicate()[0]) for p in procs]

    alone, together = spin(1)[0], sum(spin(2))
    return Goal(SCRIPT, "this machine's ceiling for a 2-worker speed-up: two CPU-bound processes at once / one "
                        "alone (pure-Python loop)", together / alone, "×",
                note=f"{together:,} / {alone:,} loops in {seconds:g} s")


def goals(quick: bool = False) -> list[Goal]:
    repeats = 3 if quick else 12
    out = [machine_ceiling()]
    out += _sweep_goals(repeats, principals=20_000, dask=True, target=TARGET)
    out += _sweep_goals(repeats, principals=400, dask=False, target=None)
    return out


def _sweep_goals(repeats: int, *, principals: int, dask: bool, target: float | None) -> list[Goal]:
    """Wall time of the sweep at 1 and 2 workers (and on Dask) and the speed-ups, as goal rows."""
    measured: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-scale-") as tmp:
        sweep_file = Path(tmp) / "sweep.toml"
        sweep_file.write_text(SWEEP.format(repeats=repeats, principals=principals))
        measured["joblib, 1 worker"] = sweep_once(sweep_file, Path(tmp) / "w1", "--workers", "1")
        measured["joblib, 2 workers"] = sweep_once(sweep_file, Path(tmp) / "w2", "--workers", "2")
        if dask:
            try:
                measured["Dask, 2 workers"] = dask_sweep(sweep_file, Path(tmp) / "dask", 2)
            except ImportError:  # the cluster extra is not installed
                pass
    base = measured["joblib, 1 worker"]
    n_runs = base["summary"]["n_runs"]
    reference = _results(base["summary"])
    what = f"sweep of {n_runs} surrogate runs of {principals:,} principals"
    out = []
    for label, m in measured.items():
        s = m["summary"]
        same = _results(s) == reference
        note = (
            f"{s['n_finished']}/{s['n_runs']} runs finished, "
            f"{'the same numbers as' if same else 'NUMBERS DIFFER from'} 1 worker; the runs' own time "
            f"{m['runs_seconds']:.0f} s in all; {_phases(s)}"
        )
        out.append(Goal(SCRIPT, f"{what}, {label}: wall time", m["seconds"], "s", note=note))
    cores = os.cpu_count() or 1
    for label in ("joblib, 2 workers", "Dask, 2 workers") if dask else ("joblib, 2 workers",):
        name = f"{what}: speed-up at 2 workers, {label.split(',')[0]}"
        if label not in measured:
            out.append(Goal(SCRIPT, name, float("nan"), "×", target, higher_is_better=True,
                            note="not measured: dask[distributed] is not installed"))
            continue
        m = measured[label]
        ok = m["summary"]["n_finished"] == n_runs and _results(m["summary"]) == reference
        speedup = base["seconds"] / m["seconds"] if ok else float("nan")
        note = f"{base['seconds']:.1f} s / {m['seconds']:.1f} s on {cores} cores"
        if not ok:
            note += "; not counted: runs missing or numbers differ from 1 worker"
        out.append(Goal(SCRIPT, name, speedup, "×", target, higher_is_better=True, note=note))
        runs_1, runs_2 = base["summary"]["timing"]["runs_s"], m["summary"]["timing"]["runs_s"]
        out.append(Goal(SCRIPT, f"  the runs phase alone, {label.split(',')[0]} (no start-up, planning, combining "
                                "or figures)", runs_1 / runs_2 if ok else float("nan"), "×",
                        note=f"{runs_1:.1f} s / {runs_2:.1f} s"))
        slower = m["runs_seconds"] / base["runs_seconds"]
        out.append(Goal(SCRIPT, f"  a run's own time with two at once / alone, {label.split(',')[0]} (the runs "
                                "phase's speed-up is at most 2 / this)", slower, "×",
                        note=f"{m['runs_seconds']:.0f} s / {base['runs_seconds']:.0f} s over the {n_runs} runs"))
    return out


def _phases(summary: dict) -> str:
    """Where the sweep's wall time went (the summary's ``timing``), in seconds."""
    t = summary["timing"]
    parts = [("plan", "plan_s"), ("workers ready", "workers_ready_s"), ("runs", "runs_s"),
             ("combine", "combine_s"), ("figures", "figures_s")]
    return "phases: " + ", ".join(f"{name} {t[key]:.1f} s" for name, key in parts if key in t)


if __name__ == "__main__":
    report(goals("--quick" in sys.argv))
