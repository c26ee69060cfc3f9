"""Has the population settled? The ``action_changes`` reporter counts only deliberate choices, the
settling verdict follows its rule, and ``population.cost_levels`` gives principals exactly the
designer's cost types."""

from __future__ import annotations

import numpy as np
import pytest

from coopsim.errors import InputError
from scenarios.config import validate
from scenarios.library._cooperative import SettleConfig, settled_verdict
from sim import CooperativeConfig, CooperativeModel


def _run(rounds: int, **overrides) -> CooperativeModel:
    data = {"rounds": rounds, "training": {"mode": "surrogate"},
            "population": {"n_principals": 20, "behaviours": {"honest": 0.8, "free_rider": 0.2}}}
    for key, value in overrides.items():
        section, _, field = key.partition(".")
        if field:
            data.setdefault(section, {})[field] = value
        else:
            data[key] = value
    return CooperativeModel(CooperativeConfig.model_validate(data), rng=4).run()


def test_changes_are_counted_on_decision_rounds_only():
    frame = _run(36, decision_period=3).datacollector.get_model_vars_dataframe()
    changes = frame["action_changes"].to_numpy()
    decision = np.arange(36) % 3 == 0
    assert np.isnan(changes[~decision]).all()
    # best response first tries each of its 7 actions (exploration: not counted), then decides
    assert np.isnan(changes[decision][:8]).all() and np.isfinite(changes[decision][8:]).all()


def test_principals_that_never_adapt_or_randomise_every_choice_do_not_count():
    for strategy in ("fixed", "regret_matching"):
        model = _run(8, **{"population.strategy": strategy})
        assert not any(p.counted for p in model.principals)
        assert np.isnan(model.datacollector.get_model_vars_dataframe()["action_changes"]).all()


def test_exploration_does_not_count_as_a_change():
    model = _run(1)
    # the first decision of a bandit tries an untried action: exploration, never a counted change
    assert all(p.explored for p in model.principals if p.behaviour == "honest")
    assert not any(p.counted for p in model.principals)


def test_a_fixed_menu_is_chosen_once_and_never_changes():
    model = _run(6, **{"mechanism": {"kind": "contracts"}})
    changes = model.datacollector.get_model_vars_dataframe()["action_changes"].to_numpy()
    assert np.isnan(changes[0]) and (changes[1:] == 0.0).all()


def _est(mean, low=None, high=None):
    return {"mean": mean, "ci_low": low, "ci_high": high, "n": 6, "level": 0.95, "method": "student t"}


def test_the_settling_rule():
    settle = SettleConfig()  # changes ≤ 0.2, |welfare drift| ≤ 0.01, |participation drift| ≤ 0.05
    calm = {"action_changes": _est(0.1, 0.05, 0.15), "welfare_drift": _est(0.02, -0.01, 0.05),
            "participation_drift": _est(0.0, -0.01, 0.01)}
    assert settled_verdict(calm, settle) == {"settled": True, "reasons": []}  # drift beyond the limit, not certain
    searching = {**calm, "action_changes": _est(0.3, 0.25, 0.35)}
    assert [r.split(":")[0] for r in settled_verdict(searching, settle)["reasons"]] == ["still searching"]
    drifting = {**calm, "welfare_drift": _est(0.02, 0.011, 0.03), "participation_drift": _est(-0.06, -0.08, -0.04)}
    reasons = settled_verdict(drifting, settle)["reasons"]
    assert len(reasons) == 2 and reasons[0].startswith("welfare drifts") and reasons[1].startswith("participation")
    one_replicate = {**calm, "welfare_drift": _est(0.02)}  # no interval: the value alone decides
    assert not settled_verdict(one_replicate, settle)["settled"]
    undefined = {**calm, "action_changes": _est(None)}
    assert settled_verdict(undefined, settle)["settled"]


def test_cost_levels_give_each_level_to_an_equal_share():
    model = _run(1, **{"population.unit_cost": (0.01, 0.05), "population.cost_levels": [0.01, 0.03, 0.05],
                       "population.n_principals": 21})
    costs = sorted(p.unit_cost for p in model.principals)
    assert costs == [0.01] * 7 + [0.03] * 7 + [0.05] * 7
    for levels, says in (([0.01, 0.2], "within unit_cost"), ([0.02, 0.02], "distinct")):
        with pytest.raises(InputError) as err:
            validate(CooperativeConfig, {"population": {"cost_levels": levels}})
        assert err.value.field == "population.cost_levels" and says in str(err.value)
