"""Memory of a sweep's combine step as the number of runs grows (goal: flat; 96 runs within 1.5× of 24).

The sweep of the reliability report: free-riding in surrogate mode, 150 principals, 100 rounds, a
2 × 3 grid (free-rider share × model value) with agent-level rows kept (about 800,000 rows per run),
4 repeats (24 runs) and 16 repeats (96 runs), on 2 joblib workers. Each sweep runs once; then its
combine step alone (``coopsim sweep … --combine-only``) runs in a fresh process whose peak resident
memory is read from ``getrusage``. Prints one line per size and the ratio. Run from the repository root:

    python benchmarks/bench_sweep_memory.py            # about 5 minutes on 2 cores
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = """
scenario = "free-riding"
seed = 0
repeats = {repeats}
[base]
replicates = 1
"cooperative.rounds" = 100
"cooperative.training.mode" = "surrogate"
"cooperative.population.n_principals" = 150
[grid]
"cooperative.population.behaviours" = [{{ honest = 0.9, free_rider = 0.1 }}, {{ honest = 0.7, free_rider = 0.3 }}]
"cooperative.population.valuation" = [50.0, 100.0, 200.0]
"""
COOPSIM = [sys.executable, "-c", "from scenarios.cli import main; main()"]


def peak_mb(cmd: list[str]) -> tuple[float, float]:
    """Run ``cmd`` in a fresh interpreter that waits for it; its peak RSS (MB) and seconds."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             f"r = subprocess.run({cmd!r}, stdout=subprocess.DEVNULL); "
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - t); "
             "sys.exit(r.returncode)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    mb, seconds = out.stdout.split()
    return float(mb), float(seconds)


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeats in (4, 16):
            path = Path(tmp) / f"sweep{repeats}.toml"
            path.write_text(SWEEP.format(repeats=repeats))
            out = Path(tmp) / f"out{repeats}"
            started = time.perf_counter()
            subprocess.run([*COOPSIM, "sweep", str(path), "--out", str(out), "--workers", "2", "--no-progress"],
                           check=True, stdout=subprocess.DEVNULL)
            total = time.perf_counter() - started
            mb, seconds = peak_mb([*COOPSIM, "sweep", str(path), "--out", str(out), "--combine-only",
                                   "--no-progress"])
            summary = json.loads((out / "summary.json").read_text())
            size = (out / "results.parquet").stat().st_size / 2**20
            results[repeats] = mb
            print(f"{summary['n_runs']:3d} runs: sweep {total:6.1f} s; combine alone {seconds:5.1f} s, peak "
                  f"{mb:7.1f} MB; results.parquet {size:6.1f} MB; finished {summary['n_finished']}")
    ratio = results[16] / results[4]
    verdict = "met" if ratio <= 1.5 else "not met"
    print(f"peak memory of the combine, 96 runs / 24 runs: {ratio:.2f} (goal ≤ 1.5: {verdict})")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(this script itself: {own:.0f} MB)")


if __name__ == "__main__":
    main()
