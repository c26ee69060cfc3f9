"""Throughput of ``coopsim tune`` on the example study (``examples/tune/alpha_for_welfare.toml``:
surrogate cooperative, 30 principals, 120 rounds, 6 replicates per trial, 30 trials): trials per
minute with 1 and 2 local workers (context), each in a fresh process and a fresh output folder (so
nothing is resumed), and the speed-up of 2 workers over 1 (goal ≥ 1.5 on 2 cores). The wall time
includes what does not parallelise: starting Python and the worker processes (imports), writing the
outputs, and waiting, in each batch, for the slower of its trials. Run from the repository root:

    python benchmarks/bench_tune.py            # about 2 minutes on 2 cores
    python benchmarks/bench_tune.py --quick    # the same study cut to 10 trials, about 1 minute
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from goals import Goal, report

SCRIPT = "bench_tune.py"
STUDY = Path(__file__).resolve().parents[1] / "examples" / "tune" / "alpha_for_welfare.toml"
COOPSIM = [sys.executable, "-c", "from scenarios.cli import main; main()"]
QUICK_TRIALS = 10


def one(workers: int, study: Path) -> tuple[float, int, float, float]:
    """Seconds, trials run, the best welfare and the trials' own run time (sum over trials of the
    cooperative runs, from trials.parquet) of one fresh study with ``workers`` workers."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run(
            [*COOPSIM, "tune", str(study), "--out", tmp, "--workers", str(workers), "--no-progress"],
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - started
        summary = json.loads((Path(tmp) / "summary.json").read_text())
        runs = float(pd.read_parquet(Path(tmp) / "trials.parquet")["seconds"].sum())
    trials = sum(summary["trials"].values())
    best = summary["best"][0]["objectives"]["welfare"]["mean"] if summary["best"] else float("nan")
    return seconds, trials, best, runs


def goals(quick: bool = False) -> list[Goal]:
    out = []
    rates = {}
    spec = tomllib.loads(STUDY.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        study = STUDY
        if quick:  # the example study with fewer trials
            import tomli_w

            spec["trials"] = QUICK_TRIALS
            study = Path(tmp) / STUDY.name
            study.write_text(tomli_w.dumps(spec))
        for workers in (1, 2):
            seconds, trials, best, runs = one(workers, study)
            rates[workers] = trials / seconds * 60
            out.append(
                Goal(
                    SCRIPT,
                    f"coopsim tune, example study ({trials} trials × {spec['repeats']} seeds), "
                    f"{workers} worker{'s' * (workers > 1)}",
                    rates[workers],
                    "trials/min",
                    note=f"{trials} trials in {seconds:.1f} s (process start and outputs included); the trials' "
                    f"own runs took {runs:.1f} s in all; best welfare {best:.1f}",
                )
            )
    out.append(
        Goal(
            SCRIPT,
            "coopsim tune speed-up, 2 workers / 1 worker",
            rates[2] / rates[1],
            "×",
            1.5,
            higher_is_better=True,
            note=f"on {os.cpu_count()} cores",
        )
    )
    return out


if __name__ == "__main__":
    report(goals("--quick" in sys.argv))
