"""The conformance check: the built-ins pass every item; each kind of misbehaving plug-in fails the
item that describes it (and only a plug-in that misbehaves fails)."""

from __future__ import annotations

import textwrap
import uuid

import pytest
from typer.testing import CliRunner

from scenarios.cli import app
from scenarios.conformance import ITEMS, assert_conforms, check_mechanism
from sim.mechanisms import BUILTINS

BAD = '''
import random
import numpy as np
from pydantic import Field
from sim.mechanisms import Mechanism, MechanismSettings, Payout

class Overpays(Mechanism):
    """Pays twice the revenue."""
    def pay(self, view):
        return {i: 2.0 * view.revenue / max(len(view.members), 1) for i in view.members}

class Unseeded(Mechanism):
    """Uses the global random module instead of the cooperative's generator."""
    def pay(self, view):
        return {i: view.revenue * random.random() / max(len(view.members), 1) for i in view.members}

class Mutates(Mechanism):
    """Clips the credit in place."""
    def pay(self, view):
        np.clip(view.credit, 0, None, out=view.credit)
        return {}

class NotFinite(Mechanism):
    """Divides by zero credit."""
    def pay(self, view):
        return Payout(reward_accuracy={i: float("nan") for i in view.members})

class Raises(Mechanism):
    def pay(self, view):
        raise RuntimeError("boom")

class UndocumentedSettings(MechanismSettings):
    rate: float = 1.0

class Undocumented(Mechanism):
    Settings = UndocumentedSettings
    def pay(self, view):
        return {}
'''


@pytest.fixture
def bad(tmp_path, monkeypatch):
    name = f"bad_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(BAD))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.mark.parametrize("kind", list(BUILTINS))
def test_builtins_pass_every_item(kind):
    report = assert_conforms(kind)
    assert [item.name for item in report.items] == list(ITEMS)


def test_builtins_pass_with_other_settings():
    assert_conforms("revenue_shares", {"alpha": 3.0, "horizon": 2})
    assert_conforms("cgsv", {"beta": 5.0, "download": "aggregate"})
    assert_conforms("contracts", {"types": 2})


@pytest.mark.parametrize(("cls", "item", "detail"), [
    ("Overpays", "within budget", "against funds"),
    ("Unseeded", "deterministic", "other payouts"),
    ("Mutates", "inputs not mutated", "view.credit"),
    ("NotFinite", "payments finite", "non-finite"),
    ("Raises", "runs", "boom"),
    ("Undocumented", "settings validate", "without a description: ['rate']"),
])
def test_each_misbehaviour_fails_its_item(bad, cls, item, detail):
    report = check_mechanism(f"{bad}:{cls}")
    failed = {i.name: i.detail for i in report.items if i.passed is False}
    assert item in failed and detail in failed[item], report.text()
    with pytest.raises(AssertionError, match=item):
        assert_conforms(f"{bad}:{cls}")


def test_cli_check_exit_codes(bad):
    runner = CliRunner()
    ok = runner.invoke(app, ["check", "equal_split", "--set", "horizon=2"])
    assert ok.exit_code == 0 and "all 6 items pass" in ok.output
    failing = runner.invoke(app, ["check", f"{bad}:Overpays"])
    assert failing.exit_code == 1 and "FAIL  within budget" in failing.output
    for args in (["check", "no_module_abc:X"], ["check", "cgsv", "--set", "alpha=2"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
