"""``coopsim tune``: search a mechanism's settings for a designer's objectives under constraints, on
Optuna, with the same seeds and intervals as every other coopsim result (see :mod:`.spec` for the
study file, :mod:`.search` for the loop and its store, :mod:`.report` for the outputs)."""

from scenarios.tune.search import TuneOutcome, run_tune
from scenarios.tune.spec import Study, load_study

__all__ = ["Study", "TuneOutcome", "load_study", "run_tune"]
