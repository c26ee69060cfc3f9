"""Scale: what the array hot path promises beside speed (issue 17) — memory refusals that name the
limit, the array form of payouts, and agents that stay a faithful view of the population's rows."""

from __future__ import annotations

import numpy as np
import pytest

from coopsim.errors import InputError, PluginError
from sim import CooperativeConfig, CooperativeModel
from sim.mechanisms import ByMember, Mechanism, Payout

SURROGATE = {"training": {"mode": "surrogate"}, "rounds": 6}


def test_a_population_that_cannot_fit_is_refused_naming_the_limit():
    cfg = CooperativeConfig.model_validate({**SURROGATE, "population": {"n_principals": 1_000_000}})
    cfg.check_memory(available_gb=8.0)  # fits: about 2 GB
    with pytest.raises(InputError) as info:
        cfg.check_memory(available_gb=1.0)
    err = info.value
    assert err.field == "population.n_principals" and err.value == 1_000_000
    # the most that fits is stated, and it is consistent with the estimate it came from
    most = int(str(err).split("at most about ")[1].split(" ")[0].replace(",", ""))
    smaller = CooperativeConfig.model_validate({**SURROGATE, "population": {"n_principals": most}})
    assert smaller.estimated_gb() <= 1.0 < cfg.estimated_gb()


def test_agent_level_rows_count_in_the_estimate_and_sybils_count_as_agents():
    base = {**SURROGATE, "population": {"n_principals": 10_000}}
    plain = CooperativeConfig.model_validate(base)
    rows = CooperativeConfig.model_validate({**base, "collect_agents": True})
    assert rows.estimated_gb() > plain.estimated_gb()
    sybils = CooperativeConfig.model_validate({**SURROGATE, "population": {
        "n_principals": 100, "behaviours": {"honest": 0.8, "sybil": 0.2}, "sybil_identities": 3}})
    assert sybils.identities == 80 + 20 * 3 == len(CooperativeModel(sybils, rng=0).principals)


def test_by_member_is_a_read_only_mapping_of_two_arrays():
    paid = ByMember([3, 1, 7], [0.5, 2.0, 1.5])
    assert dict(paid) == {3: 0.5, 1: 2.0, 7: 1.5} and len(paid) == 3 and paid[7] == 1.5
    with pytest.raises(ValueError, match="3 ids but 2 values"):
        ByMember([1, 2, 3], [1.0, 2.0])


class _Twice(Mechanism):
    def pay(self, view):
        ids = np.concatenate([view.member_ids, view.member_ids[:1]])
        return Payout(ByMember(ids, np.ones(len(ids))))


def test_a_payout_naming_a_principal_twice_stops_the_run():
    model = CooperativeModel({**SURROGATE, "mechanism": {"kind": f"{__name__}:_Twice"}}, rng=0)
    with pytest.raises(PluginError, match="same principal twice"):
        model.step()


def test_agents_read_and_write_their_rows():
    model = CooperativeModel({**SURROGATE, "population": {"n_principals": 50,
                                                          "behaviours": {"honest": 0.8, "free_rider": 0.2}}}, rng=2)
    model.run()
    pop = model.population
    for p in model.principals:
        i = p.index
        assert p.utility == pop.utility[i] and p.money == pop.money[i] and p.joined == pop.join[i]
        assert p.rows == model._rows[i] and p.behaviour in ("honest", "free_rider")
        assert p.surplus == pytest.approx(pop.utility[i] - pop.outside_value(100.0)[i])
    # the book balances: welfare is the sum of the agents' utilities
    assert model.report_welfare == pytest.approx(sum(p.utility for p in model.principals), rel=1e-12)
    first = model.principals[0]
    first.money = 12.5
    assert pop.money[0] == 12.5
