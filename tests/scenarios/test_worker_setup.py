"""What every sweep or study worker sets up before its first task (scenarios.parallel.worker_setup),
checked in a fresh interpreter started as Dask's nannies start theirs (the allocator variable set)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json
import torch
from threadpoolctl import threadpool_info
from scenarios.parallel import keep_freed_memory, worker_setup
worker_setup()
import scipy.linalg  # a BLAS loaded after the first set-up (scipy's own OpenBLAS), as a task may load it
worker_setup()
print(json.dumps({"torch": torch.get_num_threads(),
                  "blas": [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"],
                  "malloc": keep_freed_memory()}))
"""


def test_a_worker_runs_one_torch_and_one_blas_thread_and_keeps_freed_memory():
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536", "OPENBLAS_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout.strip().splitlines()[-1])
    assert state["torch"] == 1
    assert state["blas"] and all(n == 1 for n in state["blas"])
    # glibc takes the thresholds (mallopt returns 1); elsewhere it is a documented no-op
    assert state["malloc"] is (platform.libc_ver()[0] == "glibc")
