"""Running independent tasks in parallel for sweeps and studies: local worker processes (joblib) or a
Dask cluster, results streamed back as they finish.

A task function runs on a worker and returns a picklable result; it must not write anything (the
coordinating process stores results as they arrive, so an interrupted run leaves only complete
files). Local workers use one torch thread each (several share the cores) and exit when the
coordinator that started them dies (:func:`die_with_parent`).
"""

from __future__ import annotations

import collections
import itertools
import os
import pickle
import queue
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from coopsim.errors import InputError

T = TypeVar("T")
R = TypeVar("R")

#: set by the coordinator for its local worker processes (they inherit the environment)
COORDINATOR_ENV = "COOPSIM_SWEEP_COORDINATOR"

_WATCHING = False


def die_with_parent() -> None:
    """A local worker process exits when the coordinator that started it dies (its parent process
    changes), so a killed coordinator leaves no workers holding memory. A daemon thread checks once a
    second; no-op in the coordinator itself and on Dask workers, which the user started."""
    global _WATCHING
    coordinator = os.environ.get(COORDINATOR_ENV)
    if _WATCHING or coordinator is None or coordinator == str(os.getpid()):
        return
    _WATCHING = True
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:  # re-parented: the coordinator is gone
                os._exit(1)

    threading.Thread(target=watch, name="coopsim-watch-coordinator", daemon=True).start()


_SET_UP = False


def worker_setup() -> None:
    """Call first in every task function: one torch thread and one BLAS thread per worker (several
    workers share the cores), glibc's allocator thresholds restored (:func:`keep_freed_memory`), die
    with the coordinator, and let finished models go (:func:`forget_finished_models`)."""
    global _SET_UP
    from threadpoolctl import threadpool_limits

    from coopsim.threads import torch_threads

    die_with_parent()
    torch_threads(1)  # when torch is imported, if a task needs it (a surrogate run does not)
    # applied to the BLAS libraries loaded by now and kept for the process (local helpers start with it
    # in their environment); at every call, since a task may have loaded another one (scipy's) since the last
    threadpool_limits(limits=1)
    if not _SET_UP:
        keep_freed_memory()
        _SET_UP = True
    forget_finished_models()


#: glibc ``mallopt`` parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(mmap_bytes: int = 32 << 20, trim_bytes: int = 128 << 20) -> bool:
    """Let glibc keep freed memory for reuse: blocks up to ``mmap_bytes`` come from the heap and up to
    ``trim_bytes`` of free heap stay with the process. Dask's nannies start their workers with
    ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes the mmap threshold at 128 KB: every array
    above it (a column of 20,000 principals) was mapped, faulted in page by page and unmapped again,
    and a surrogate run of 20,000 principals took 2.3× as long as in a plain process. A no-op (False)
    where the C library has no ``mallopt`` (not glibc)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_bytes)) and bool(mallopt(_M_TRIM_THRESHOLD, trim_bytes))


class _ModelCounters(weakref.WeakKeyDictionary):
    """mesa's per-model agent-id counters, holding each model weakly (a counter from 1 per model)."""

    def __getitem__(self, model: Any) -> Any:
        try:
            return super().__getitem__(model)
        except KeyError:
            counter = self[model] = itertools.count(1)
            return counter


def forget_finished_models() -> None:
    """mesa 3.3 keeps every model it ever saw as a key of the class attribute ``Agent._ids`` (its
    per-model agent-id counters; mesa issue 3179, fixed upstream by assigning ids in the model), so
    a process running many runs holds every finished model: about 13 MB per surrogate run of 400
    principals × 100 rounds, until loky replaces the worker (a fresh interpreter importing torch
    again). Holding the models weakly numbers agents exactly as before and lets a finished model be
    collected. A no-op for a mesa without that dictionary."""
    import mesa

    ids = getattr(mesa.Agent, "_ids", None)
    if isinstance(ids, collections.defaultdict):
        live = _ModelCounters()
        live.update(ids)  # models already counted keep their counters (strongly held until now)
        mesa.Agent._ids = live


def local_map(fn: Callable[[T], R], items: Sequence[T], workers: int) -> Iterator[R]:
    """``fn`` over ``items`` with ``workers`` tasks at once: ``workers == 1`` in this process, in order;
    else this process and ``workers − 1`` helper processes (:func:`helper_pool`) take the items one
    at a time from one queue (results in completion order; a helper gets its next item the moment it
    finishes one). This process working beside its helpers is what lets two workers halve a sweep on
    two cores: only one process has to start (and import the library) while this one already runs
    tasks.

    A task that raises (here or in a helper) stops the map: nothing more is handed out, every result
    finished before is still yielded, then the exception propagates; so does an interrupt during this
    process's own task. Helpers still busy when the map stops early (an error, an interrupt, a
    consumer that lets go) are stopped, not waited for."""
    if workers == 1:
        for item in items:
            yield fn(item)
        return
    pool = helper_pool(workers - 1)
    pending = collections.deque(items)
    lock = threading.Lock()
    finished: queue.SimpleQueue = queue.SimpleQueue()
    handed: list[Future] = []
    state = {"stopped": False, "received": 0, "error": None}

    def stop() -> None:
        with lock:
            state["stopped"] = True

    def take() -> tuple[bool, Any]:
        with lock:
            return (True, pending.popleft()) if pending and not state["stopped"] else (False, None)

    def hand_out(done: Future | None = None) -> None:
        """One item to the helpers, again each time one of theirs finishes (in loky's thread); none
        after a failed one."""
        if done is not None and (done.cancelled() or done.exception() is not None):
            stop()
            return
        with lock:
            if state["stopped"] or not pending:
                return
            future = pool.submit(fn, pending.popleft())
            handed.append(future)
        future.add_done_callback(finished.put)
        future.add_done_callback(hand_out)

    def arrived(wait: bool) -> Iterator[R]:
        """The helpers' results finished so far (``wait``: at least one more); the first failure is
        kept in ``state`` to be raised once the good results are out."""
        futures = []
        if wait:
            futures.append(finished.get())
        while not finished.empty():
            futures.append(finished.get())
        state["received"] += len(futures)
        for future in futures:
            if future.cancelled():
                continue
            if future.exception() is None:
                yield future.result()
            elif state["error"] is None:
                state["error"] = future.exception()

    def helpers_busy() -> bool:
        with lock:
            return state["received"] < len(handed)

    completed = False
    try:
        for _ in range(workers - 1):
            hand_out()
        while True:
            got, item = take()
            if not got:
                break
            try:
                result = fn(item)
            except BaseException:  # this process's task failed or was interrupted: keep what is done
                stop()
                yield from arrived(wait=False)
                raise
            yield result
            yield from arrived(wait=False)
            if state["error"] is not None:
                raise state["error"]
        while helpers_busy():
            yield from arrived(wait=True)
            if state["error"] is not None:
                raise state["error"]
        completed = True
    finally:
        stop()
        if not completed and any(not f.done() for f in handed):
            pool.shutdown(wait=False, kill_workers=True)  # the next map starts fresh helpers


#: seconds an idle helper process waits for work before it exits (joblib's default)
HELPER_IDLE_S = 300


def helper_pool(n: int) -> Any:
    """The ``n`` local helper processes: joblib's reusable loky executor (the same processes from call
    to call while ``n`` stays the same), this process marked as their coordinator."""
    from joblib.externals.loky import get_reusable_executor

    _mark_coordinator()
    # loky replaces a helper whose memory grew by more than 300 MB after a large run; the result is kept
    # and nothing is lost, so its warning would only alarm
    warnings.filterwarnings("ignore", message="A worker stopped while some jobs were given", category=UserWarning)
    # one BLAS/OpenMP thread from the start: the helpers share the cores with this process
    env = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    # where a task finds the user's plug-ins (the working directory, PYTHONPATH): helpers started under
    # other ones (an earlier map in this process) are not reused but replaced
    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")
    env[f"{COORDINATOR_ENV}_CWD"] = os.getcwd()
    return get_reusable_executor(max_workers=n, timeout=HELPER_IDLE_S, env=env)


def warm_library(scenario: str | None = None) -> None:
    """A worker's first call (:func:`start_workers`): its set-up and the library's imports (seconds),
    done while the coordinator imports and plans. ``scenario`` (a library name): that scenario's
    module alone (:func:`scenarios.registry.get`; a surrogate cooperative then never loads torch);
    None: every scenario of the library."""
    import contextlib

    worker_setup()
    with contextlib.suppress(Exception):  # a library that fails to import is reported by the runs themselves
        from scenarios.registry import get, registry

        if scenario is None:
            registry()
        else:
            get(scenario)


class Started:
    """Workers started by :func:`start_workers`: :meth:`ready` waits until each has warmed up;
    :meth:`close` lets go of what was not waited for (quietly), e.g. when planning failed."""

    def __init__(self, ready: Callable[[], None] = lambda: None, close: Callable[[], None] = lambda: None) -> None:
        self._ready, self._close = ready, close

    def ready(self) -> None:
        self._ready()
        self._close = lambda: None

    def close(self) -> None:
        self._close()
        self._close = lambda: None  # once


def start_workers(warm: Callable[[], Any], *, workers: int = 1, client: Any = None) -> Started:
    """Start the workers now, each calling ``warm`` once (e.g. importing the scenario library: seconds
    per process), so that they start while the coordinator plans; call ``ready()`` on the result
    before mapping. Locally, the ``workers − 1`` joblib processes started here are the helpers of
    the next :func:`local_map` with as many workers (joblib reuses its loky executor) and ``ready()``
    waits for nothing (the coordinator runs tasks while they warm up); on Dask, one call per
    connected worker, and ``ready()`` waits for them. ``warm`` should not raise (a failing start-up
    is better reported by the tasks themselves). Nothing to start for one local worker."""
    if client is not None:
        addresses = list(client.ncores())  # every connected worker
        futures = [client.submit(warm, workers=[a], allow_other_workers=False, pure=False) for a in addresses]
        return Started(lambda: client.gather(futures, errors="skip"), lambda: client.cancel(futures))
    if workers == 1:
        return Started()
    pool = helper_pool(workers - 1)  # the coordinator is the other worker (local_map)
    for _ in range(workers - 1):
        pool.submit(warm)  # nothing to wait for: the coordinator runs tasks while its helpers warm up
    # closed before ready() (bad input found while planning): stop the helpers at once rather than let
    # the coordinator's exit wait for their warm-up
    return Started(close=lambda: pool.shutdown(wait=False, kill_workers=True))


def _mark_coordinator() -> None:
    """Before a local pool starts: mark this process as the coordinator (inherited by the workers: see
    :func:`die_with_parent`) and fix the start method to "spawn". Importing mesa sets the default
    start method to "spawn" (``mesa/batchrunner.py``), joblib takes its workers' start method from
    that default at every call and starts a new executor when it changed: workers started before the
    scenario library was imported (:func:`start_workers`) would be dropped and started again."""
    import multiprocessing

    os.environ[COORDINATOR_ENV] = str(os.getpid())
    if multiprocessing.get_start_method(allow_none=True) != "spawn":
        multiprocessing.set_start_method("spawn", force=True)


def connect(address: str, timeout: float = 20.0) -> Any:
    """A Dask client for ``address``; a malformed or unreachable address is bad input (raised before
    anything is written)."""
    try:
        from dask.distributed import Client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError("--scheduler", address, "needs dask[distributed]: pip install 'coopsim[cluster]'") from exc
    try:  # check the address's form first: a Client made from a malformed one fails noisily on cleanup
        from distributed.comm.addressing import parse_address, parse_host_port

        scheme, location = parse_address(address)
        if scheme in ("tcp", "tls"):
            parse_host_port(location)
    except ValueError as exc:
        raise InputError("--scheduler", address, f"a Dask scheduler address, e.g. tcp://host:8786 ({exc})") from None
    try:
        client = Client(address, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:  # ValueError: not an address (e.g. no port)
        raise InputError("--scheduler", address, f"the address of a reachable Dask scheduler, e.g. "
                         f"tcp://host:8786 ({exc})") from None
    return client


def dask_map(fn: Callable[[T], R], items: Sequence[T], client: Any, keys: Sequence[str]) -> Iterator[R]:
    """``fn`` over ``items`` on the Dask cluster behind ``client`` (results in completion order);
    ``keys`` name the tasks on the scheduler's dashboard.

    Each task travels as ``_call_pickled(bytes of (fn, item))``: the scheduler unpickles every task
    it receives, and one that named ``fn`` and its item directly would make it import their modules,
    the whole scenario library for a sweep (1–1.5 s of CPU taken from the workers at the start of
    the runs on a 2-core machine); as bytes, only this module. The workers unpickle them."""
    import cloudpickle  # Dask's own serializer: ``fn`` may be a closure
    from dask.distributed import as_completed

    blobs = [cloudpickle.dumps((fn, item)) for item in items]
    futures = client.map(_call_pickled, blobs, key=list(keys), pure=False)
    for future in as_completed(futures, loop=client.loop):
        yield future.result()


def _call_pickled(blob: bytes) -> Any:
    """A Dask task of :func:`dask_map`: ``fn(item)`` from the pickled pair."""
    fn, item = pickle.loads(blob)
    return fn(item)


def parallel_map(fn: Callable[[T], R], items: Sequence[T], *, workers: int = 1, client: Any = None,
                 keys: Sequence[str] = ()) -> Iterator[R]:
    """:func:`dask_map` when a ``client`` is given, else :func:`local_map`."""
    if client is not None:
        return dask_map(fn, items, client, keys or [f"coopsim-{i}" for i in range(len(items))])
    return local_map(fn, items, workers)
