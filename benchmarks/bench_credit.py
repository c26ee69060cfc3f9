"""Credit at a fraction of training (issue 17), measured end to end in one instrumented run.

Per real round: (value filters + one-step counterfactual credit + the mechanism's pay) / (the rest of
the round), at N = 20 and N = 100 members, for exact V3 and for its first-order term
(``training.credit = "first_order"``). Goals: ≤ 0.5 with exact V3, ≤ 0.15 with the first-order option.

Setting: the default cooperative (MLP on digits, TL, 4 steps per round, the coordinator's guard on,
revenue shares, no value profiles, so the filters cost nothing here), every principal a member every
round (``strategy = "fixed"``: the full pool, labels cleaned). For each N the exact and the
first-order run are built on the same seed (same data, same training: credit does not feed back into
a fixed strategy) and stepped alternately, round by round, so a slow spell of the machine hits both
alike; the first round is a warm-up and not counted.

Instrumentation lives in this script only (nothing in the normal path): time accumulators wrapped
around the backend's credit of a step (``RealBackend._credit_step``: V3, or holding the step for its
first-order term, with the divergence checks), the first-order term of the round's held steps
(``RealBackend._first_order_credit``, at the end of the round; counted once where it runs inside a
step's credit), the trainer's value filters (``TraversalTrainer._filter``) and the mechanism's
``pay``; "the rest" is each round's time (``model.step``) minus those. The credit hook
also adds each step's displacements ``−η g̃_i`` to the round's per-member updates (what model-reward
mechanisms receive, needed whatever the credit); that bookkeeping counts in the rest, and its time
is printed beside the ratio.

Clocks: wall time (``time.perf_counter``) with torch's own thread count, by default. On a shared
machine whose other load preempts torch's worker threads, wall times of small ops swell unevenly;
``--cpu`` then measures CPU time of the main thread (``time.thread_time``) with torch on one
thread, which counts only this process's own work.

Run: ``python benchmarks/bench_credit.py`` (``--quick``: fewer rounds; ``--cpu``: CPU-time clock).
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable

import torch
from goals import Goal, report

from sim import CooperativeModel
from sim.config import CooperativeConfig

SCRIPT = "bench_credit"
CREDIT_PARTS = ("credit", "credit_round", "filters", "mechanism")
CLOCK = {"clock": time.perf_counter, "name": "wall time"}


def use_cpu_clock() -> None:
    """Measure CPU time of the main thread, with torch on one thread (see the module docstring)."""
    torch.set_num_threads(1)
    CLOCK.update(clock=time.thread_time, name="CPU time, torch on 1 thread")


class _Clock:
    """Seconds accumulated per part."""

    def __init__(self) -> None:
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.running: list[str] = []  # parts being timed now, outermost first

    def wrap(self, part: str, fn: Callable, *, unless_inside: str | None = None) -> Callable:
        """``fn`` timed into ``part``; not counted again while ``unless_inside`` is being timed."""
        clock = CLOCK["clock"]

        def timed(*args, **kwargs):
            if unless_inside in self.running:
                return fn(*args, **kwargs)
            self.running.append(part)
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] += clock() - start
                self.running.pop()

        return timed


def instrumented(n: int, credit: str, rounds: int, seed: int = 0) -> tuple[CooperativeModel, _Clock]:
    """A cooperative of ``n`` always-joining principals whose credit hook, filters and pay are timed."""
    config = CooperativeConfig.model_validate(
        {
            "rounds": rounds,
            "population": {"n_principals": n, "strategy": "fixed"},
            "training": {"credit": credit, "standalone_epochs": 1},  # setup is not measured
            "mechanism": {"kind": "revenue_shares"},
        }
    )
    model = CooperativeModel(config, rng=seed)
    clock = _Clock()
    backend = model.backend
    backend._credit_step = clock.wrap("credit", backend._credit_step)
    backend._first_order_credit = clock.wrap("credit_round", backend._first_order_credit, unless_inside="credit")
    trainer = backend.trainer
    step = trainer.step

    def step_with_timed_hook(*args, callback=None, **kwargs):
        return step(*args, callback=None if callback is None else clock.wrap("hook", callback), **kwargs)

    trainer.step = step_with_timed_hook
    trainer._filter = clock.wrap("filters", trainer._filter)
    model.mechanism.pay = clock.wrap("mechanism", model.mechanism.pay)
    return model, clock


def measure(n: int, rounds: int) -> dict[str, dict[str, float]]:
    """Seconds per counted round of each part, for exact and first-order credit (alternating rounds)."""
    runs = {credit: instrumented(n, credit, rounds + 1) for credit in ("exact", "first_order")}
    now = CLOCK["clock"]
    for counted in (False, True):
        for _ in range(rounds if counted else 1):
            for model, clock in runs.values():
                start = now()
                model.step()
                clock.seconds["round"] += now() - start
        if not counted:  # warm-up round: forget it
            for _, clock in runs.values():
                clock.seconds.clear()
    for model, _ in runs.values():
        members = len(model._members) if hasattr(model, "_members") else n
        assert members == n, f"expected all {n} principals to be members, got {members}"
    return {credit: {k: v / rounds for k, v in clock.seconds.items()} for credit, (_, clock) in runs.items()}


def goals(quick: bool = False) -> list[Goal]:
    rounds = 5 if quick else 20
    out: list[Goal] = []
    for n in (20, 100):
        parts = measure(n, rounds)
        for credit, target in (("exact", 0.5), ("first_order", 0.15)):
            p = parts[credit]
            spent = sum(p.get(k, 0.0) for k in CREDIT_PARTS)
            rest = p["round"] - spent
            bookkeeping = p.get("hook", 0.0) - p.get("credit", 0.0)
            shown = {"credit": p.get("credit", 0.0) + p.get("credit_round", 0.0), "filters": p.get("filters", 0.0),
                     "mechanism": p.get("mechanism", 0.0)}
            detail = ", ".join(f"{k} {1e3 * v:.2f}" for k, v in shown.items())
            what = f"(filters + credit + mechanism) / rest of round, {credit.replace('_', '-')} credit, N = {n}"
            note = f"ms per round: {detail}; rest {1e3 * rest:.1f} ({rounds} rounds, {CLOCK['name']})"
            out.append(Goal(SCRIPT, what, spent / rest, "×", target, note=note))
            out.append(
                Goal(
                    SCRIPT,
                    f"the same, counting the hook's displacement bookkeeping as credit, {credit}, N = {n}",
                    (spent + bookkeeping) / (rest - bookkeeping),
                    "×",
                    note=f"bookkeeping {1e3 * bookkeeping:.2f} ms per round",
                )
            )
    return out


if __name__ == "__main__":
    if "--cpu" in sys.argv:
        use_cpu_clock()
    report(goals("--quick" in sys.argv))
