"""The public mechanism API: plug-ins by ``module:Class`` and entry point, settings as a
discriminated union on ``kind``, self-selection, extra reporters, plug-in failures, strategies."""

from __future__ import annotations

import textwrap
import uuid

import numpy as np
import pytest

from coopsim.errors import InputError, PluginError
from sim import CooperativeConfig, CooperativeModel
from sim.mechanisms import BUILTINS, catalogue, mechanism_class

SURROGATE = {"rounds": 6, "training": {"mode": "surrogate"},
             "population": {"n_principals": 10, "behaviours": {"honest": 0.8, "free_rider": 0.2}}}

PAY_PER_ROW = '''
from pydantic import Field
from sim.mechanisms import Mechanism, MechanismSettings, Payout

class PayPerRowSettings(MechanismSettings):
    rate: float = Field(2.0, gt=0, description="money per claimed row, capped by the round's revenue")
    fail_at: int = Field(0, ge=0, description="raise in this round (1-based; 0: never)")

class PayPerRow(Mechanism):
    Settings = PayPerRowSettings
    summary = "a fixed rate per row"
    reporters = ("owed",)

    def pay(self, view):
        if self.settings.fail_at and view.round + 1 == self.settings.fail_at:
            raise ZeroDivisionError("the plug-in's own bug")
        owed = self.settings.rate * view.rows
        self.owed = float(owed.sum())
        scale = min(1.0, view.revenue / owed.sum()) if owed.sum() > 0 else 0.0
        return Payout(payments=dict(zip(view.members, (owed * scale).tolist())))

    def metrics(self):
        return {"owed": self.owed}

class NotAMechanism:
    pass

class NoPay(Mechanism):
    pass

class BadSettings(Mechanism):
    Settings = dict
    def pay(self, view):
        return {}
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """A fresh module (unique name) holding the plug-ins above, importable from sys.path."""
    name = f"mechs_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PAY_PER_ROW))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_a_plugin_by_module_path_runs_with_its_own_settings(plugin):
    kind = f"{plugin}:PayPerRow"
    model = CooperativeModel({**SURROGATE, "mechanism": {"kind": kind, "rate": 0.5}}, rng=0).run()
    frame, _ = model.frames()
    assert model.config.mechanism.model_dump() == {"kind": kind, "rate": 0.5, "fail_at": 0}
    assert (frame["payments"] <= frame["revenue"] + 1e-9).all()  # capped by the round's revenue
    assert frame["payments"].sum() > 0
    assert "owed" in frame.columns and (frame["owed"] > 0).all()  # its own reporter is recorded


def test_each_builtin_stores_only_its_own_settings():
    fields = {kind: set(CooperativeConfig(mechanism={"kind": kind}).model_dump()["mechanism"])
              for kind in BUILTINS}
    assert fields["revenue_shares"] == {"kind", "alpha", "horizon", "members_use_model"}
    assert fields["equal_split"] == {"kind", "horizon", "members_use_model"}
    assert fields["cgsv"] == {"kind", "beta", "reputation_alpha", "gamma", "download"}
    assert fields["contracts"] == {"kind", "types", "capacity_quantile", "cohort"}


def test_a_setting_of_another_kind_is_refused_naming_the_kinds_settings():
    with pytest.raises(Exception, match=r"mechanism\.alpha.*unknown setting for kind='cgsv'.*beta"):
        CooperativeConfig(mechanism={"kind": "cgsv", "alpha": 2.0})


@pytest.mark.parametrize(("kind", "message"), [
    ("no_such_module_xyz:Thing", "no module named 'no_such_module_xyz'"),
    ("{plugin}:Missing", "has no 'Missing'"),
    ("{plugin}:NotAMechanism", "a subclass of sim.mechanisms.Mechanism"),
    ("{plugin}:NoPay", "implements pay"),
    ("{plugin}:BadSettings", "Settings is a subclass"),
    ("nonsense", "a built-in name"),
])
def test_a_kind_that_does_not_import_names_what_is_allowed(plugin, kind, message):
    with pytest.raises(InputError) as info:
        mechanism_class(kind.format(plugin=plugin))
    assert info.value.field == "mechanism.kind" and message in str(info.value)


def test_plugin_settings_that_fail_validation_name_the_field(plugin):
    with pytest.raises(Exception, match=r"mechanism\.rate.*greater than 0"):
        CooperativeConfig(mechanism={"kind": f"{plugin}:PayPerRow", "rate": -1.0})


def test_a_plugin_that_raises_stops_the_run_naming_itself_and_the_round(plugin):
    kind = f"{plugin}:PayPerRow"
    model = CooperativeModel({**SURROGATE, "mechanism": {"kind": kind, "fail_at": 3}}, rng=0)
    with pytest.raises(PluginError, match=rf"mechanism '{kind}' raised while paying \(round 3\)") as info:
        model.run()
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_entry_point_names_are_discovered(tmp_path, monkeypatch, plugin):
    """An installed package's ``coopsim.mechanisms`` entry point gives a short name."""
    dist = tmp_path / "fake_coop_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-coop-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[coopsim.mechanisms]\npay_per_row_ep = {plugin}:PayPerRow\n")
    assert mechanism_class("pay_per_row_ep").__name__ == "PayPerRow"
    assert "pay_per_row_ep" in catalogue()
    model = CooperativeModel({**SURROGATE, "mechanism": {"kind": "pay_per_row_ep"}}, rng=1).run()
    assert model.config.mechanism.kind == "pay_per_row_ep"


MENU = '''
from sim.mechanisms import Mechanism, MechanismSettings, Offer, Payout

class OneOffer(Mechanism):
    """A single take-it-or-leave-it offer: bring 5 rows, receive the shared model."""
    sells_model = False

    def menu(self):
        return (Offer(rows=5, value=1e6),)

    def pay(self, view):
        assert all(j == 0 for j in view.offers)
        return Payout(reward_accuracy={i: view.accuracy for i in view.members})
'''


def test_self_selection_hook_principals_take_the_offer(tmp_path, monkeypatch):
    name = f"menu_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(MENU))
    monkeypatch.syspath_prepend(str(tmp_path))
    model = CooperativeModel({**SURROGATE, "mechanism": {"kind": f"{name}:OneOffer"}}, rng=0)
    model.step()
    assert all(p.joined and p.rows == 5 for p in model.principals)  # the offer beats every outside option
    frame, _ = model.frames()
    assert frame["contract_regret"].iloc[-1] == pytest.approx(0.0, abs=1e-9)


STRATEGY = '''
from sim.strategies import Strategy

class AlwaysOut(Strategy):
    """Never joins."""
    def choose(self, peers=()):
        return 0
'''


def test_a_strategy_plugin_by_module_path(tmp_path, monkeypatch):
    name = f"strat_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(STRATEGY))
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = {**SURROGATE, "population": {"n_principals": 6, "strategy": f"{name}:AlwaysOut"}}
    model = CooperativeModel(cfg, rng=0).run()
    assert model.datacollector.get_model_vars_dataframe()["participation"].eq(0).all()
    with pytest.raises(Exception, match=r"population\.strategy.*subclass of sim\.strategies\.Strategy"):
        CooperativeConfig(population={"strategy": "sim.mechanisms:Payout"})


def test_budget_of_builtin_money_mechanisms_is_the_revenue():
    for kind in ("revenue_shares", "equal_split", "data_size"):
        frame, _ = CooperativeModel({**SURROGATE, "mechanism": {"kind": kind}}, rng=3).run().frames()
        assert frame["payments"].sum() <= frame["revenue"].sum() + 1e-9
        assert np.isclose(frame["payments"].sum(), frame["revenue"].sum())  # horizon 1: everything is paid


def test_coopsim_list_shows_installed_mechanisms_and_strategies(tmp_path, monkeypatch, plugin):
    from typer.testing import CliRunner

    from scenarios.cli import app

    name = f"strat_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(STRATEGY))
    dist = tmp_path / "fake_lister-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-lister\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[coopsim.mechanisms]\nrow_pay_listed = {plugin}:PayPerRow\n\n"
                                           f"[coopsim.strategies]\nalways_out_listed = {name}:AlwaysOut\n")
    result = CliRunner().invoke(app, ["list"], terminal_width=250)
    assert result.exit_code == 0, result.output
    assert "row_pay_listed" in result.output and "rate=2.0" in result.output  # with its settings
    assert "always_out_listed" in result.output and "Never joins." in result.output
    for builtin in ("revenue_shares", "cgsv", "contracts", "regret_matching"):
        assert builtin in result.output
    cfg = {**SURROGATE, "population": {"n_principals": 4, "strategy": "always_out_listed"}}
    assert CooperativeModel(cfg, rng=0).run().report_participation == 0.0
