"""Dask worker preload: ``dask worker tcp://host:8786 --preload scenarios.dask_preload``.

A worker started this way imports the scenario library (torch among it: seconds) and sets itself up
(:func:`scenarios.parallel.worker_setup`: one torch and one BLAS thread, glibc's allocator
thresholds) when it starts, instead of on the first run of the first sweep or study it serves. A
sweep checks every worker anyway (:func:`scenarios.parallel.start_workers`), so workers started
without it are correct, only slower to their first run.
"""

from __future__ import annotations

from typing import Any

from scenarios.parallel import warm_library


def dask_setup(worker: Any) -> None:
    """Dask's preload hook, called once in the worker process when it starts."""
    warm_library()
