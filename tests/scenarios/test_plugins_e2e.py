"""Plug-ins end to end, as a user meets them: a mechanism written outside the repository (a file in
a temporary folder on PYTHONPATH) with its own settings, on the user's CSV and model factory, in
``free-riding`` and in a sweep; the worked example in ``examples/plugins``; bad input exits 2 before
anything is written; a plug-in that raises stops its run (exit 1, one traceback) and a sweep records
that run as failed and goes on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from scenarios.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugins"

MECHANISM = '''
from pydantic import Field
from sim.mechanisms import Mechanism, MechanismSettings, Payout


class TopHalfSettings(MechanismSettings):
    share: float = Field(0.5, gt=0, le=1, description="fraction of members (by credit) that share the revenue")
    fail_at: int = Field(0, ge=0, description="raise in this round, 1-based (0: never)")


class TopHalf(Mechanism):
    """The round's revenue split equally among the members with the highest credit."""

    Settings = TopHalfSettings

    def pay(self, view):
        if self.settings.fail_at and view.round + 1 == self.settings.fail_at:
            raise KeyError("a bug inside the plug-in")
        if not view.members:
            return {}
        k = max(1, int(round(self.settings.share * len(view.members))))
        top = sorted(range(len(view.members)), key=lambda i: -view.credit[i])[:k]
        return {view.members[i]: view.revenue / k for i in top}
'''

NETS = '''
from torch import nn


def small_net(n_features, n_classes):
    return nn.Sequential(nn.Linear(n_features, 16), nn.Tanh(), nn.Linear(16, n_classes))


def batchnorm_net(n_features, n_classes):
    return nn.Sequential(nn.Linear(n_features, 16), nn.BatchNorm1d(16), nn.Linear(16, n_classes))


def wrong_output(n_features, n_classes):
    return nn.Linear(n_features, n_classes + 1)


def not_a_module(n_features, n_classes):
    return "a string"


def raises(n_features, n_classes):
    raise RuntimeError("cannot build")
'''


@pytest.fixture
def user(tmp_path, monkeypatch):
    """A user's folder outside the repository: a mechanism module, a model module and a CSV,
    importable through PYTHONPATH; the working directory is elsewhere."""
    pkg = tmp_path / "mine"
    pkg.mkdir()
    (pkg / "user_mechs.py").write_text(textwrap.dedent(MECHANISM))
    (pkg / "user_nets.py").write_text(textwrap.dedent(NETS))
    rng = np.random.default_rng(0)
    n = 240
    y = rng.integers(0, 3, n)
    frame = pd.DataFrame({"height": rng.normal(y, 0.6), "weight": rng.normal(-y, 0.6), "age": rng.normal(0, 1, n),
                          "species": np.array(["ant", "bee", "cricket"])[y]})
    frame.to_csv(pkg / "rows.csv", index=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(pkg))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(pkg), os.environ.get("PYTHONPATH", "")]))
    return pkg


def _sets(pkg: Path, mechanism: str = "{ kind = \"user_mechs:TopHalf\", share = 0.25 }") -> list[str]:
    return ["--set", "cooperative.rounds=4", "--set", "replicates=2",
            "--set", "cooperative.population.n_principals=8",
            "--set", "cooperative.training.standalone_epochs=2",
            "--set", f"cooperative.training.dataset={{ path = \"{pkg / 'rows.csv'}\", label = \"species\" }}",
            "--set", "cooperative.training.model=\"user_nets:small_net\"",
            "--set", f"mechanisms=[{{ label = \"equal split\", mechanism = {{ kind = \"equal_split\" }} }}, "
                     f"{{ label = \"top half\", mechanism = {mechanism} }}]"]


def test_a_mechanism_from_outside_runs_in_free_riding_on_users_data_and_model(user, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", "free-riding", "--out", str(out), *_sets(user)])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["mechanisms"]) == {"equal split", "top half"}
    stored = {m["label"]: m["mechanism"] for m in summary["config"]["mechanisms"]}
    assert stored["top half"] == {"kind": "user_mechs:TopHalf", "share": 0.25, "fail_at": 0}  # its own only
    assert stored["equal split"] == {"kind": "equal_split", "horizon": 1, "members_use_model": False}
    assert "top half" in result.output  # in the terminal tables
    assert (out / "figures" / "mechanisms.png").is_file()


def test_a_mechanism_from_outside_runs_in_a_sweep_and_a_failing_run_is_recorded(user, tmp_path):
    csv = (user / "rows.csv").as_posix()
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(textwrap.dedent(f'''
        scenario = "free-riding"
        seed = 0
        repeats = 1

        [base]
        replicates = 1
        "cooperative.rounds" = 3
        "cooperative.population.n_principals" = 8
        "cooperative.training.standalone_epochs" = 2
        "cooperative.training.dataset" = {{ path = "{csv}", label = "species" }}
        "cooperative.training.model" = "user_nets:small_net"

        [grid]
        mechanisms = [
            [{{ label = "top half", mechanism = {{ kind = "user_mechs:TopHalf", share = 0.5 }} }}],
            [{{ label = "top half", mechanism = {{ kind = "user_mechs:TopHalf", fail_at = 2 }} }}],
        ]
    '''))
    out = tmp_path / "sweep_out"
    result = CliRunner().invoke(app, ["sweep", str(sweep), "--out", str(out), "--workers", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(runs["status"]) == ["failed", "finished"]
    error = runs.loc[runs.status == "failed", "error"].iloc[0]
    assert "user_mechs:TopHalf" in error and "round 2" in error and "KeyError" in error


def test_a_plugin_that_raises_exits_1_with_its_traceback_once(user, tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": os.environ["PYTHONPATH"]}
    proc = subprocess.run([sys.executable, "-m", "scenarios.cli", "run", "free-riding", "--out", str(out),
                           *_sets(user, '{ kind = "user_mechs:TopHalf", fail_at = 3 }')],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert "error: mechanism 'user_mechs:TopHalf' raised while paying (round 3)" in proc.stderr
    assert proc.stderr.count("Traceback (most recent call last)") == 1
    assert "a bug inside the plug-in" in proc.stderr and "user_mechs.py" in proc.stderr
    assert not (out / "summary.json").exists()


@pytest.mark.parametrize(("change", "field", "message"), [
    (("mechanisms", '[{ label = "x", mechanism = { kind = "user_mechs:Nope" } }]'), "mechanisms.0.mechanism.kind",
     "has no 'Nope'"),
    (("mechanisms", '[{ label = "x", mechanism = { kind = "missing_mod:X" } }]'), "mechanisms.0.mechanism.kind",
     "no module named 'missing_mod'"),
    (("mechanisms", '[{ label = "x", mechanism = { kind = "user_mechs:TopHalf", share = 2.0 } }]'),
     "mechanisms.0.mechanism.share", "less than or equal to 1"),
    (("cooperative.training.dataset", '{ path = "nowhere.csv", label = "species" }'),
     "cooperative.training.dataset.path", "nowhere.csv"),
    (("cooperative.training.dataset", '{ path = "{csv}", label = "kind" }'), "cooperative.training.dataset.label",
     "species"),
    (("cooperative.training.model", '"user_nets:raises"'), "cooperative.training.model", "cannot build"),
    (("cooperative.training.model", '"user_nets:not_a_module"'), "cooperative.training.model", "str"),
    (("cooperative.training.model", '"user_nets:wrong_output"'), "cooperative.training.model", "got shape (2, 4)"),
    (("cooperative.training.model", '"user_nets:batchnorm_net"'), "cooperative.training.model", "BatchNorm1d"),
    (("cooperative.population.n_principals", "500"), "cooperative.training.dataset.path", "rows"),
])
def test_bad_plugin_input_exits_2_before_anything_is_written(user, tmp_path, change, field, message):
    out = tmp_path / "out"
    key, value = change
    args = [*_sets(user), "--set", f"{key}={value.replace('{csv}', (user / 'rows.csv').as_posix())}"]
    result = CliRunner().invoke(app, ["run", "free-riding", "--out", str(out), *args])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())  # the terminal wraps long lines
    assert field in text and message in text, result.output
    assert not out.exists()


def test_the_worked_example_runs_as_the_readme_says(tmp_path, monkeypatch):
    """README, "Bring your own mechanism": from examples/plugins, check the plug-in and run the duel;
    the plug-in appears in summary.json, the tables and the figures beside the built-ins."""
    monkeypatch.chdir(EXAMPLE)
    runner = CliRunner()
    check = runner.invoke(app, ["check", "my_coop.mechanisms:AuditedRowShares"])
    assert check.exit_code == 0 and "all 6 items pass" in check.output, check.output
    out = tmp_path / "duel"
    result = runner.invoke(app, ["run", "duel.toml", "--out", str(out), "--set", "replicates=2",
                                 "--set", "cooperative.rounds=4"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert "audited rows" in summary["mechanisms"] and "CGSV β=1" in summary["mechanisms"]
    assert "audited rows" in result.output
    frame = pd.read_parquet(out / "results.parquet")
    assert "audited rows" in set(frame["mechanism"])
    assert {"mechanisms.png", "paired_differences.png"} <= {p.name for p in (out / "figures").iterdir()}


def test_a_users_file_is_accepted_where_other_scenarios_take_a_dataset(user, tmp_path):
    """``attribution-substrate`` (data.dataset) and ``cgsv-fairness`` (datasets) take a file too; a
    file is named by its stem in tables and figures."""
    spec = f'{{ path = "{(user / "rows.csv").as_posix()}", label = "species" }}'
    runner = CliRunner()
    out = tmp_path / "attr"
    result = runner.invoke(app, ["run", "attribution-substrate", "--out", str(out), "--set", f"data.dataset={spec}",
                                 "--set", "replicates=2", "--set", "training.epochs=2", "--set",
                                 "fedavg_shapley=false", "--set", "data.levels=[0.0, 0.2, 0.4]"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "cgsv"
    result = runner.invoke(app, ["run", "cgsv-fairness", "--out", str(out), "--set", f"datasets=[{spec}]",
                                 "--set", "rounds=2", "--set", "replicates=1", "--set", 'partitions=["uni"]',
                                 "--set", 'methods=["standalone", "cgsv"]', "--set", "betas=[1.0]",
                                 "--set", "n_samples=0", "--set", "n_agents=3"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["datasets"] == ["rows"]
    assert (out / "figures" / "cgsv_members_rows.png").is_file()
    bad = runner.invoke(app, ["run", "cgsv-fairness", "--out", str(tmp_path / "bad"), "--set",
                              'datasets=[{ path = "absent.csv" }]'])
    assert bad.exit_code == 2 and "datasets.0" in " ".join(bad.output.split()), bad.output
