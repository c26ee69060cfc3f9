"""The reliability suite (scripts/reliability.py) as tests: ≥ 30 kinds of bad input, a sweep
SIGKILLed at five random moments and restarted, Ctrl-C and resume."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _suite():
    name = "coopsim_reliability_suite"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "reliability.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file executes
        spec.loader.exec_module(module)
    return sys.modules[name]


SUITE = _suite()


def test_the_suite_has_at_least_30_kinds_of_bad_input():
    assert len(SUITE.CASES) >= 30 and len({c.name for c in SUITE.CASES}) == len(SUITE.CASES)


@pytest.mark.parametrize("case", SUITE.CASES, ids=lambda c: c.name)
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(case, tmp_path):
    ok, why = SUITE.check_case(case, tmp_path)
    assert ok, why


def test_five_random_sigkills_lose_and_duplicate_nothing():
    result = SUITE.kill_and_resume(kills=5, seed=0, log=lambda line: None)
    assert result["hits"] >= 3, result  # most kills land while the sweep is running
    assert (result["lost"], result["duplicated"], result["identical"]) == (0, 0, 1), result
