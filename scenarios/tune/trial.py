"""One trial of a study: its scenario document and its run on a worker.

A trial is the library scenario ``cooperative`` with one mechanism, ``repeats`` replicates and the
study's root seed, every setting written out (:func:`document`). The same document, written as TOML,
is the trial's ``best.toml``: ``coopsim run best.toml`` goes through the same layering, validation
and runner (:func:`scenarios.runner.execute`) as the trial did, so it reproduces the trial's numbers
bit for bit. Before a trial runs, its document makes the round trip through TOML, so what ran is
exactly what the file says.
"""

from __future__ import annotations

import tomllib
import traceback
from dataclasses import dataclass
from typing import Any

from learning.seeding import derive_seed
from scenarios.config import as_toml
from scenarios.library._cooperative import cooperative_document
from scenarios.parallel import worker_setup
from scenarios.registry import resolve_document
from scenarios.runner import execute
from scenarios.tune.spec import Study, assign

#: the library scenario every trial runs as
SCENARIO = "cooperative"


def label_of(number: int) -> str:
    return f"trial {number}"


def document(study: Study, number: int, params: dict[str, Any]) -> dict[str, Any]:
    """The scenario document of trial ``number`` with ``params`` (dotted path → value): every field of
    the cooperative written out, so that no library default can change what it means."""
    coop = assign(study.cooperative.model_dump(mode="json"), params)
    f = study.file
    mechanism = coop.mechanism.model_dump(mode="json", exclude_none=True)
    return cooperative_document(coop, [(label_of(number), mechanism)], seed=f.seed, replicates=f.repeats,
                                scenario=SCENARIO, final_window=f.final_window, ci_level=f.ci_level,
                                settle=f.settle.model_dump(mode="json"))


def seeds(study: Study) -> list[int]:
    """The replicate seeds every trial runs (as the ``cooperative`` scenario derives them)."""
    return [derive_seed(study.file.seed, 100, k) for k in range(study.file.repeats)]


@dataclass(frozen=True)
class TrialTask:
    """What a worker needs to run one trial (picklable)."""

    number: int
    document: dict[str, Any]
    metrics: tuple[str, ...]


def run_trial(task: TrialTask) -> dict[str, Any]:
    """Run one trial (on a worker; writes nothing). Returns its number, the estimates of the study's
    metrics, its settling record and seconds — or its error and traceback."""
    worker_setup()
    try:
        doc = tomllib.loads(as_toml(task.document))  # exactly what best.toml will hold
        resolved = resolve_document(doc, label=f"trial-{task.number}")
        _, summary, _ = execute(resolved, run_id=f"trial-{task.number:04d}")
        label = label_of(task.number)
        entry = summary["mechanisms"][label]
        return {"number": task.number, "metrics": {m: entry.get(m) for m in task.metrics},
                "settling": summary["settling"][label], "seconds": summary["seconds"]}
    except Exception as exc:  # one failed trial must not stop the study
        error = f"{type(exc).__name__}: {exc}"
        if exc.__cause__ is not None:
            error += f" ← {type(exc.__cause__).__name__}: {exc.__cause__}"
        return {"number": task.number, "error": error, "traceback": traceback.format_exc()}
