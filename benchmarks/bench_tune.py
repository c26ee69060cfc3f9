"""Throughput of ``coopsim tune`` on the example study (``examples/tune/alpha_for_welfare.toml``:
surrogate cooperative, 30 principals, 120 rounds, 6 replicates per trial, 30 trials): trials per
minute with 1 and 2 local workers, each in a fresh process and a fresh output folder (so nothing is
resumed). Prints one line per worker count and the speed-up. The wall time includes what does not
parallelise: starting Python and the worker processes (imports), writing the outputs, and waiting,
in each batch, for the slower of its trials. Run from the repository root:

    python benchmarks/bench_tune.py            # about 2 minutes on 2 cores
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY = Path(__file__).resolve().parents[1] / "examples" / "tune" / "alpha_for_welfare.toml"
COOPSIM = [sys.executable, "-c", "from scenarios.cli import main; main()"]


def one(workers: int) -> tuple[float, int, float, float]:
    """Seconds, trials run, the best welfare and the trials' own run time (sum over trials of the
    cooperative runs, from trials.parquet) of one fresh study with ``workers`` workers."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([*COOPSIM, "tune", str(STUDY), "--out", tmp, "--workers", str(workers), "--no-progress"],
                       check=True, capture_output=True)
        seconds = time.perf_counter() - started
        summary = json.loads((Path(tmp) / "summary.json").read_text())
        runs = float(pd.read_parquet(Path(tmp) / "trials.parquet")["seconds"].sum())
    trials = sum(summary["trials"].values())
    best = summary["best"][0]["objectives"]["welfare"]["mean"] if summary["best"] else float("nan")
    return seconds, trials, best, runs


def main() -> None:
    rates = {}
    for workers in (1, 2):
        seconds, trials, best, runs = one(workers)
        rates[workers] = trials / seconds * 60
        print(f"workers={workers}: {trials} trials in {seconds:.1f} s (process start and outputs included) = "
              f"{rates[workers]:.1f} trials/min; the trials' own runs took {runs:.1f} s in all; best welfare "
              f"{best:.1f}")
    print(f"speed-up 2 workers / 1 worker: {rates[2] / rates[1]:.2f}× (goal ≥ 1.5 on 2 cores)")


if __name__ == "__main__":
    main()
