"""Local parallel map (scenarios.parallel.local_map): the coordinating process runs tasks beside its
helper processes, every item exactly once, errors stop the map."""

from __future__ import annotations

import collections
import os
import time

import pytest

from scenarios.parallel import helper_pool, local_map, start_workers


def _slow(x: int) -> tuple[int, int]:
    time.sleep(0.2)
    return x, os.getpid()


def _fails_at_three(x: int) -> int:
    if x == 3:
        raise ValueError("item 3 fails")
    time.sleep(0.05)
    return x


def _warm() -> None:
    time.sleep(0.5)


def test_the_coordinator_and_its_helper_share_the_items():
    # two workers = this process + one helper process: every item once, both take some (the helper gets
    # the first item at once; the coordinator takes the next from the same queue)
    start_workers(_warm, workers=2)  # the helper warms up while the coordinator already works
    out = list(local_map(_slow, list(range(10)), 2))
    assert sorted(x for x, _ in out) == list(range(10))
    by = collections.Counter(pid for _, pid in out)
    assert os.getpid() in by and len(by) == 2 and all(n >= 2 for n in by.values())


def test_one_worker_runs_in_order_in_this_process():
    out = list(local_map(_slow, [3, 1, 2], 1))
    assert out == [(3, os.getpid()), (1, os.getpid()), (2, os.getpid())]


def test_a_failing_task_stops_the_map_and_raises():
    # item 3 fails wherever it runs: the error reaches the caller and no item is started after it
    seen = []
    with pytest.raises(ValueError, match="item 3 fails"):
        for x in local_map(_fails_at_three, list(range(40)), 2):
            seen.append(x)
    assert len(seen) < 39


def _marks(item: tuple[str, int]) -> int:
    folder, x = item
    open(os.path.join(folder, str(x)), "w").close()  # started
    time.sleep(0.2)
    return x


def test_a_consumer_that_stops_early_starts_nothing_more(tmp_path):
    # after the caller lets go, only the tasks already running finish: of 30 items, at most the
    # coordinator's first and the helper's first two (its current and the one it took next) started
    gen = local_map(_marks, [(str(tmp_path), x) for x in range(30)], 2)
    next(gen)
    pool = helper_pool(1)
    gen.close()
    time.sleep(1.0)
    assert len(list(tmp_path.iterdir())) <= 4
    assert helper_pool(1) is not pool  # the busy helper was stopped, not left running (or waited for)


class _Stop(BaseException):
    """Stands for an interrupt (Ctrl-C) inside the coordinator's own task."""


def _interrupted_here(item: tuple[int, int]) -> int:
    coordinator, x = item
    if os.getpid() == coordinator:
        time.sleep(3.0)
        raise _Stop
    time.sleep(0.1)
    return x


def test_an_interrupt_in_the_coordinators_task_still_yields_the_helpers_finished_results():
    # the coordinator is interrupted 3 s into its task (item 1); the helper finished the other seven
    # meanwhile: all seven reach the caller (a sweep writes them) before the interrupt propagates
    got = []
    with pytest.raises(_Stop):
        for x in local_map(_interrupted_here, [(os.getpid(), x) for x in range(8)], 2):
            got.append(x)
    assert sorted(got) == [0, 2, 3, 4, 5, 6, 7]


def _helper_fails(item: tuple[int, int]) -> int:
    coordinator, x = item
    if os.getpid() != coordinator:
        raise ValueError(f"helper fails on item {x}")
    time.sleep(0.5)
    return x


def test_a_failing_helper_does_not_drop_the_coordinators_finished_result():
    got = []
    with pytest.raises(ValueError, match="helper fails"):
        for x in local_map(_helper_fails, [(os.getpid(), x) for x in range(6)], 2):
            got.append(x)
    assert got == [1]  # the coordinator's own run (item 1) finished and was yielded; nothing after


def _warm_long() -> None:
    time.sleep(30.0)


def test_helpers_closed_before_use_are_shut_down_and_a_later_map_starts_new_ones():
    # bad input found while planning: close() kills the helpers (their 30 s warm-up is not waited for)
    # and the next map gets a fresh pool
    started = start_workers(_warm_long, workers=2)
    pool = helper_pool(1)
    started.close()
    assert helper_pool(1) is not pool
    out = list(local_map(_slow, list(range(6)), 2))
    assert sorted(x for x, _ in out) == list(range(6))


def test_helpers_started_under_another_working_directory_are_replaced(tmp_path, monkeypatch):
    first = helper_pool(1)
    assert helper_pool(1) is first  # reused while nothing changed
    monkeypatch.chdir(tmp_path)  # a plug-in would now be looked for here: the old helper cannot see it
    second = helper_pool(1)
    assert second is not first
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    third = helper_pool(1)
    assert third is not second
    third.shutdown(wait=True)


def test_dask_tasks_reach_the_scheduler_as_bytes(tmp_path):
    # A Dask scheduler unpickles every task it is given. dask_map sends each (fn, item) as bytes, so
    # the scheduler imports only scenarios.parallel, never the task's own module (for a sweep: the
    # whole library, seconds of CPU taken from the workers). Scheduler and worker run in their own
    # processes here, as on a cluster; a task submitted the plain way is the control.
    import functools
    import subprocess
    import sys

    import numpy as np

    distributed = pytest.importorskip("dask.distributed")
    from economics.settlement import alpha_power_shares
    from scenarios.parallel import dask_map

    address = tmp_path / "scheduler.json"
    cli = [sys.executable, "-m"]
    procs = [subprocess.Popen([*cli, "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                               "--no-dashboard", "--scheduler-file", str(address)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for _ in range(300):
            if address.exists():
                break
            time.sleep(0.05)
        procs.append(subprocess.Popen([*cli, "distributed.cli.dask_worker", "--scheduler-file", str(address),
                                       "--nthreads", "1", "--no-nanny", "--no-dashboard"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with distributed.Client(scheduler_file=str(address), timeout=30) as client:
            client.wait_for_workers(1, timeout=30)
            items = [np.array([1.0, 3.0]), np.array([2.0, 2.0, 4.0])]
            got = list(dask_map(functools.partial(alpha_power_shares, alpha=1.0), items, client, ["a", "b"]))
            assert sorted(map(len, got)) == [2, 3]
            assert all(abs(g.sum() - 1.0) < 1e-12 for g in got)

            def on_scheduler() -> bool:
                return client.run_on_scheduler(eval, "'economics.settlement' in __import__('sys').modules")

            assert not on_scheduler()
            client.submit(alpha_power_shares, items[0], 1.0, pure=False).result()  # the task named directly
            assert on_scheduler()
    finally:
        for p in reversed(procs):
            p.terminate()
            p.wait(timeout=30)
