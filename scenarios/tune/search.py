"""The search loop of ``coopsim tune``: an Optuna study in a SQLite store, asked and told in batches.

The store (``study.db`` in the output folder) is Optuna's RDB storage: it opens unchanged in
``optuna-dashboard sqlite:///study.db``. Only this coordinating process writes to it; workers (joblib
processes or a Dask cluster) only run trials.

Batches: the coordinator asks ``workers`` trials (with a Dask scheduler, ``workers`` is the batch
size), runs them in parallel, and tells their results in trial order before asking the next
batch; the sampler is re-seeded before every batch from the root seed and the number of trials so
far. The same study file and worker count therefore give the same
trials whatever order the workers finish in.

Resuming: ``kill -9`` at any moment and rerunning the same command continues the same study. A trial
that was running when the coordinator died is marked failed (it has no ``error``: it was
interrupted) and its parameters are queued again, so its budget is re-used on the same point; a trial
told complete is never run again. ``trials`` counts the trials that finished: complete ones and ones
whose run failed with an error (a configuration the cooperative refuses, a plug-in that raised).

Repeated points: a trial whose settings repeat a complete trial's (samplers do propose them, more so
over choices) is answered from that trial without running, and records ``same_as``: every trial runs
the same seeds, so it would give the same numbers.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coopsim.errors import InputError
from learning.seeding import derive_seed
from scenarios.io import prepare_folder
from scenarios.parallel import connect, parallel_map
from scenarios.tune.report import best_so_far, interrupted, write_outputs
from scenarios.tune.spec import Study, load_study
from scenarios.tune.trial import TrialTask, document, run_trial, seeds

STORE = "study.db"
#: metrics every trial records besides its objectives and constraints (for tables and figures)
RECORDED = ("welfare", "participation", "accuracy", "free_rider_profit", "action_changes", "welfare_drift",
            "participation_drift")
FINGERPRINT = "coopsim_fingerprint"
DEFINITION = "coopsim_definition"


def storage_url(out: Path) -> str:
    return f"sqlite:///{(Path(out) / STORE).resolve()}"


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_store(study: Study, out: Path) -> Any:
    """The study's Optuna study in ``out/study.db``, created or loaded. A store holding another study
    (another name, or the same name with a different definition) is bad input."""
    import optuna

    _quiet_optuna()
    url = storage_url(out)
    existed = (Path(out) / STORE).is_file()
    try:
        storage = optuna.storages.RDBStorage(url)
    except Exception as exc:  # a file that is not an Optuna store
        raise InputError("--out", str(out), f"a folder whose {STORE} is an Optuna study store ({exc})") from None
    if existed:
        names = optuna.study.get_all_study_names(storage)
        if names and study.name not in names:
            raise InputError("--out", str(out), f"a folder for this study: its {STORE} holds the study "
                             f"{', '.join(map(repr, names))}, not {study.name!r} (use another --out)")
    ostudy = optuna.create_study(storage=storage, study_name=study.name, directions=study.directions,
                                 load_if_exists=True)
    stored = ostudy.user_attrs.get(FINGERPRINT)
    if stored is None:
        ostudy.set_user_attr(FINGERPRINT, study.fingerprint())
        ostudy.set_user_attr(DEFINITION, json.dumps(study.definition(), sort_keys=True))
    elif stored != study.fingerprint():
        before = json.loads(ostudy.user_attrs.get(DEFINITION, "{}"))
        changed = sorted(k for k, v in study.definition().items() if before.get(k) != v)
        raise InputError("--out", str(out), f"a folder for this study: its {STORE} holds a study named "
                         f"{study.name!r} defined differently (changed: {', '.join(changed) or 'unknown'}); "
                         f"only trials may change between runs — use another --out for a new study")
    return ostudy


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """One coordinator per store: a second ``coopsim tune`` on the same folder is refused (the lock
    goes with the process, so a killed coordinator leaves none)."""
    with open(Path(out) / ".tune.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError("--out", str(out), "a folder no other coopsim tune is running in") from None
        yield


def recover(ostudy: Any) -> list[int]:
    """Trials left running by a coordinator that died: marked failed (interrupted) and their
    parameters queued again. Returns their numbers."""
    from optuna.trial import TrialState

    stale = ostudy.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    for t in stale:
        ostudy.tell(t.number, state=TrialState.FAIL)
        if t.params:  # (killed while being asked, it has none: the sampler draws anew)
            ostudy.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number}, skip_if_exists=False)
    return [t.number for t in stale]


def used_budget(ostudy: Any) -> int:
    """Trials that finished: complete, or failed with an error (not interrupted)."""
    from optuna.trial import TrialState

    return sum(1 for t in ostudy.get_trials(deepcopy=False)
               if t.state == TrialState.COMPLETE or (t.state == TrialState.FAIL and not interrupted(t)))


def make_sampler(study: Study, seed: int) -> Any:
    """The study's sampler, seeded (``seed`` < 2³²). Constraints (and, unless ``unsettled =
    "allowed"``, settling) reach it as the trials' named constraint values (``Trial.set_constraint``:
    feasible when every value ≤ 0), which TPE and NSGA-II read."""
    import optuna

    kind = study.file.sampler
    if kind == "auto":
        kind = "tpe" if len(study.objectives) == 1 else "nsga2"
    trials = study.file.trials
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=max(2, min(10, trials // 3)))
    if kind == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, trials // 4)))
    return optuna.samplers.RandomSampler(seed=seed)


def evaluate(study: Study, result: dict[str, Any]) -> tuple[list[float] | None, dict[str, Any]]:
    """A finished trial's objective values (means; ``None`` when one is undefined) and the user
    attributes stored with it: estimates, constraint ends and violations, settling, feasibility."""
    f = study.file
    metrics = result["metrics"]
    settling = result["settling"]
    constraints = {}
    violations = []
    for c in study.constraints:
        value = c.end(metrics.get(c.metric) or {}, f.constraints_on)
        v = c.violation(value)
        constraints[c.text()] = {"metric": c.metric, "op": c.op, "bound": c.bound, "judged": value,
                                 "on": f.constraints_on, "violation": v, "met": v <= 0}
        violations.append(v)
    if f.unsettled == "infeasible":
        miss = 0.0 if settling["settled"] else 1.0
        violations.append(miss)
        constraints["settled"] = {"metric": "settled", "op": "==", "bound": 1.0, "judged": 1.0 - miss,
                                  "on": "replicates", "violation": miss, "met": settling["settled"],
                                  "reasons": settling.get("reasons", [])}
    values = [metrics.get(m, {}).get("mean") for m, _ in study.objectives]
    attrs = {"metrics": metrics, "constraints": constraints,
             "feasible": all(v <= 0 for v in violations), "settled": bool(settling["settled"]),
             "settling_reasons": settling.get("reasons", []), "seconds": result["seconds"]}
    if any(v is None for v in values):
        undefined = [m for (m, _), v in zip(study.objectives, values, strict=True) if v is None]
        attrs["error"] = "objective undefined: " + ", ".join(
            f"{m} ({(metrics.get(m) or {}).get('reason', 'no value')})" for m in undefined)
        return None, attrs
    return [float(v) for v in values], attrs


@dataclass
class TuneOutcome:
    """What a ``coopsim tune`` call did."""

    out: Path
    study: Study
    ran: int
    recovered: list[int]
    summary: dict[str, Any]
    figures: list[Path]


def run_tune(path: Path, *, out: Path | None = None, workers: int = 1, scheduler: str | None = None,
             progress: bool = True, connect_timeout: float = 20.0) -> TuneOutcome:
    """Load the study file, open (or resume) its store under ``out``, run the missing trials, then
    write ``trials.parquet``, the figures, ``best.toml`` files and ``summary.json``."""
    if workers < 1:
        raise InputError("--workers", workers, "an integer ≥ 1")
    path = Path(path)
    study = load_study(path)
    out = prepare_folder(Path("results") / "tune" / path.stem if out is None else Path(out))
    with locked(out):
        ostudy = open_store(study, out)
        client = connect(scheduler, connect_timeout) if scheduler else None
        try:
            recovered = recover(ostudy)
            ran = _search(study, ostudy, workers, client, progress)
        finally:
            if client is not None:
                client.close()
        summary, figures = write_outputs(study, ostudy, out, recovered=recovered)
    return TuneOutcome(out, study, ran, recovered, summary, figures)


def _search(study: Study, ostudy: Any, workers: int, client: Any, progress: bool) -> int:
    from optuna.trial import TrialState

    distributions = {p.path: p.distribution() for p in study.params}
    metrics = tuple(dict.fromkeys([*(m for m, _ in study.objectives), *(c.metric for c in study.constraints),
                                   *RECORDED]))
    total = study.file.trials
    ran = 0
    with _Progress(progress, total, used_budget(ostudy), study) as bar:
        while (used := used_budget(ostudy)) < total:
            ostudy.sampler = make_sampler(study, derive_seed(study.file.seed, 7, len(ostudy.trials)) % 2**32)
            asked = [ostudy.ask(distributions) for _ in range(min(workers, total - used))]
            known = _finished_points(ostudy)
            results: dict[int, dict[str, Any]] = {}
            runs: dict[str, TrialTask] = {}  # point → the trial of this batch that runs it
            for t in asked:
                key = _point_key(t.params)
                if key in known:  # the same settings with the same seeds: the same numbers, not run again
                    results[t.number] = {**known[key], "same_as": known[key]["number"]}
                elif key in runs:  # asked twice in this batch: runs once
                    results[t.number] = {"same_as": runs[key].number}
                else:
                    try:
                        runs[key] = TrialTask(t.number, document(study, t.number, t.params), metrics)
                    except InputError as exc:  # this combination of values is refused by the cooperative
                        results[t.number] = {"number": t.number, "error": f"InputError: {exc}"}
            for r in parallel_map(run_trial, list(runs.values()), workers=workers, client=client,
                                  keys=[f"coopsim-trial-{task.number}" for task in runs.values()]):
                results[r["number"]] = r
            for number, r in results.items():
                if r.keys() == {"same_as"}:
                    results[number] = {**results[r["same_as"]], "same_as": r["same_as"]}
            for t in asked:  # in trial order, whatever order the workers finished in
                r = results[t.number]
                t.set_user_attr("seeds", seeds(study))
                if "same_as" in r:
                    t.set_user_attr("same_as", r["same_as"])
                if "error" in r:
                    t.set_user_attr("error", r["error"])
                    ostudy.tell(t, state=TrialState.FAIL)
                else:
                    values, attrs = evaluate(study, r)
                    for key, value in attrs.items():
                        t.set_user_attr(key, value)
                    for name, c in attrs["constraints"].items():
                        t.set_constraint(name, c["violation"])
                    if values is None:
                        ostudy.tell(t, state=TrialState.FAIL)
                    else:
                        ostudy.tell(t, values)
                ran += 1
                bar.advance(ostudy)
    return ran


def _point_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def _finished_points(ostudy: Any) -> dict[str, dict[str, Any]]:
    """Complete trials by their parameters, as run results (every trial runs the same seeds, so a
    point asked again gives the same numbers: it is answered from the first trial, not run)."""
    from optuna.trial import TrialState

    out: dict[str, dict[str, Any]] = {}
    for t in ostudy.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        a = t.user_attrs
        key = _point_key(t.params)
        if key not in out and "metrics" in a:
            out[key] = {"number": t.number, "metrics": a["metrics"], "seconds": 0.0,
                        "settling": {"settled": a.get("settled", False), "reasons": a.get("settling_reasons", [])}}
    return out


class _Progress:
    """A rich progress bar over finished trials, showing the best feasible trial so far."""

    def __init__(self, enabled: bool, total: int, completed: int, study: Study) -> None:
        self.enabled, self.total, self.completed, self.study = enabled, total, completed, study
        self.bar: Any = None
        self.task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("tune"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                TextColumn("{task.description}"), console=Console(stderr=True))
            self.bar.start()
            self.task = self.bar.add_task("", total=self.total, completed=self.completed)
        return self

    def advance(self, ostudy: Any) -> None:
        if self.bar is None:
            return
        self.bar.update(self.task, advance=1, description=best_so_far(self.study, ostudy))

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
