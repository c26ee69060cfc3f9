"""``coopsim tune``: a study finds a known optimum, resumes exactly after SIGKILL, writes best.toml
files that reproduce their trials bit for bit, judges constraints on interval ends, and refuses bad
study files (exit 2) before any trial runs."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from coopsim.errors import InputError
from scenarios.tune import load_study
from scenarios.tune.search import evaluate
from scenarios.tune.spec import parse_constraint

#: a plug-in mechanism whose own reporter is a known function of its setting: score(x) = −(x − 0.3)²,
#: plus "spread", a reporter that differs between replicates (so its interval has width)
PLUGIN = '''
from typing import Literal
from pydantic import Field
from sim.mechanisms import Mechanism, MechanismSettings, Payout


class QuadSettings(MechanismSettings):
    kind: Literal["quad_mech:Quad"] = "quad_mech:Quad"
    x: float = Field(0.5, ge=0.0, le=1.0, description="the setting searched")


class Quad(Mechanism):
    Settings = QuadSettings
    summary = "test: pays nothing, reports score = -(x - 0.3)^2 and a replicate-dependent spread"
    reporters = ("score", "spread")

    def pay(self, view):
        return Payout({}, {})

    def metrics(self):
        draw = float(self.cooperative.rng.normal())
        return {"score": -(self.settings.x - 0.3) ** 2, "spread": self.settings.x + 0.05 * draw}
'''

COOPERATIVE = """
[cooperative]
rounds = {rounds}
[cooperative.population]
n_principals = 8
behaviours = {{ honest = 0.75, free_rider = 0.25 }}
[cooperative.training]
mode = "surrogate"
"""


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    """A folder holding the quad_mech plug-in, importable (on sys.path) and the working directory."""
    folder = tmp_path / "plug"
    folder.mkdir()
    (folder / "quad_mech.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.chdir(folder)
    return folder


def write_study(folder: Path, body: str, *, rounds: int = 6, name: str = "study.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body) + COOPERATIVE.format(rounds=rounds))
    return path


QUAD = """
seed = 3
trials = {trials}
repeats = 2
unsettled = "allowed"
[space]
"mechanism.x" = {{ low = 0.0, high = 1.0 }}
[objectives]
score = "maximize"
"""


def _with_mechanism(path: Path) -> None:
    text = path.read_text().replace("[cooperative]\n", '[cooperative]\nmechanism = { kind = "quad_mech:Quad" }\n', 1)
    path.write_text(text)


def test_study_finds_the_known_optimum_of_a_synthetic_objective(plugin_dir, cli, pngs):
    study = write_study(plugin_dir, QUAD.format(trials=20))
    _with_mechanism(study)
    out = plugin_dir / "out"
    result = cli("tune", study, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    best = summary["best"][0]
    # score = −(x − 0.3)² has its maximum 0 at x = 0.3; 20 TPE trials get within 0.05 of it
    assert abs(best["params"]["mechanism.x"] - 0.3) < 0.05
    assert best["objectives"]["score"]["mean"] > -0.0025
    trials = pd.read_parquet(out / "trials.parquet")
    assert len(trials) == 20 and set(trials.state) == {"complete"}
    assert {"param.mechanism.x", "score.mean", "score.ci_low", "score.ci_high", "seeds"} <= set(trials.columns)
    assert (out / "best.toml").is_file() and (out / "study.db").is_file()
    names = {p.name for p in pngs(out / "figures", minimum=3)}
    assert {"history.png", "slices.png", "importance.png"} <= names
    assert "best trial" in result.output and "trial" in result.output


def test_best_toml_reproduces_the_trials_objectives_bit_for_bit(plugin_dir, cli):
    study = write_study(plugin_dir, """
        seed = 1
        trials = 3
        repeats = 2
        [space]
        "mechanism.alpha" = { low = 1.0, high = 4.0 }
        [objectives]
        welfare = "maximize"
        accuracy = "maximize"
        [constraints]
        free_rider_profit = "<= 1000"
        """, rounds=8)
    out = plugin_dir / "out"
    assert cli("tune", study, "--out", out, "--no-progress").exit_code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"], "a constraint this loose is met by every settled trial"
    for best in summary["best"]:
        rerun = plugin_dir / f"rerun-{best['number']}"
        result = cli("run", out / best["file"], "--out", rerun)
        assert result.exit_code == 0, result.output
        entry = json.loads((rerun / "summary.json").read_text())["mechanisms"][f"trial {best['number']}"]
        for metric, est in best["objectives"].items():
            assert entry[metric] == est  # every number of the estimate identical (== on floats)


def test_constraints_are_judged_on_the_pessimistic_end_of_the_interval(plugin_dir):
    study_path = write_study(plugin_dir, """
        trials = 2
        repeats = 3
        [space]
        "mechanism.alpha" = { low = 1.0, high = 2.0 }
        [objectives]
        welfare = "maximize"
        [constraints]
        participation = ">= 0.8"
        free_rider_profit = "<= 0"
        """)
    study = load_study(study_path)
    est = {"mean": 0.85, "ci_low": 0.75, "ci_high": 0.95, "n": 3, "level": 0.95, "method": "student t"}
    frp = {"mean": -0.5, "ci_low": -1.0, "ci_high": 0.1, "n": 3, "level": 0.95, "method": "student t"}
    result = {"metrics": {"welfare": est, "participation": est, "free_rider_profit": frp},
              "settling": {"settled": True, "reasons": []}, "seconds": 0.1}
    values, attrs = evaluate(study, result)
    assert values == [0.85]
    # the means meet both constraints, the pessimistic ends (0.75 < 0.8, 0.1 > 0) do not
    assert attrs["constraints"]["participation >= 0.8"]["judged"] == 0.75
    assert attrs["constraints"]["participation >= 0.8"]["violation"] == pytest.approx(0.05)
    assert attrs["constraints"]["free_rider_profit <= 0"]["judged"] == 0.1
    assert not attrs["feasible"]
    on_mean = study.file.model_copy(update={"constraints_on": "mean"})
    from scenarios.tune.spec import build_study

    values, attrs = evaluate(build_study(on_mean, name="m"), result)
    assert attrs["feasible"] and attrs["constraints"]["participation >= 0.8"]["judged"] == 0.85
    # a population that did not settle is infeasible unless unsettled = "allowed"
    unsettled = {**result, "settling": {"settled": False, "reasons": ["welfare drifts"]}}
    _, attrs = evaluate(build_study(on_mean, name="m"), unsettled)
    assert not attrs["feasible"] and attrs["constraints"]["settled"]["violation"] == 1.0
    allowed = on_mean.model_copy(update={"unsettled": "allowed"})
    _, attrs = evaluate(build_study(allowed, name="m"), unsettled)
    assert attrs["feasible"] and "settled" not in attrs["constraints"]
    # an undefined metric violates its constraint by +inf
    assert parse_constraint("x", "<= 0").violation(None) == float("inf")


def test_a_constraint_on_a_noisy_metric_uses_its_interval_in_a_real_study(plugin_dir, cli):
    study = write_study(plugin_dir, QUAD.format(trials=6).replace('unsettled = "allowed"', 'unsettled = "allowed"\n'
                                                                   '[constraints]\nspread = "<= 0.5"'))
    _with_mechanism(study)
    out = plugin_dir / "out"
    assert cli("tune", study, "--out", out, "--no-progress").exit_code == 0
    trials = pd.read_parquet(out / "trials.parquet")
    judged = trials["constraint[spread <= 0.5].judged"]
    assert (judged == trials["spread.ci_high"]).all() and (trials["spread.ci_high"] > trials["spread.mean"]).all()
    assert (trials.feasible == (judged <= 0.5)).all()


def test_same_study_same_seed_gives_the_same_trials(plugin_dir, cli):
    study = write_study(plugin_dir, QUAD.format(trials=5))
    _with_mechanism(study)
    frames = []
    for k in range(2):
        assert cli("tune", study, "--out", plugin_dir / f"out{k}", "--no-progress").exit_code == 0
        frames.append(pd.read_parquet(plugin_dir / f"out{k}" / "trials.parquet").drop(columns=["seconds"]))
    pd.testing.assert_frame_equal(frames[0], frames[1])


def _states(db: Path) -> list[tuple[int, str]]:
    """(number, state) of every trial in an Optuna store; a running trial counts once its parameters
    are stored (it is past being asked, i.e. its run has started)."""
    try:
        with sqlite3.connect(db, timeout=1.0) as con:
            return con.execute("select t.number, t.state from trials t where t.state != 'RUNNING' or exists "
                               "(select 1 from trial_params p where p.trial_id = t.trial_id) "
                               "order by t.number").fetchall()
    except sqlite3.Error:
        return []


def test_sigkill_and_resume_keeps_the_trial_count_exact(tmp_path):
    study = write_study(tmp_path, """
        trials = 6
        repeats = 2
        unsettled = "allowed"
        [space]
        "mechanism.alpha" = { low = 1.0, high = 4.0 }
        [objectives]
        welfare = "maximize"
        """, rounds=400)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "scenarios.cli", "tune", str(study), "--out", str(out), "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    killed_while = None
    while time.monotonic() < deadline and proc.poll() is None:
        states = _states(out / "study.db")
        complete = [n for n, s in states if s == "COMPLETE"]
        running = [n for n, s in states if s == "RUNNING"]
        if len(complete) >= 2 and running:
            proc.send_signal(signal.SIGKILL)
            killed_while = (complete, running)
            break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert killed_while is not None, f"the study never had 2 complete and 1 running trial: {proc.stdout.read()!r}"
    complete_before, running_before = killed_while
    import optuna  # the completed trials' values, read straight from the store

    stored = optuna.load_study(study_name="study", storage=f"sqlite:///{out / 'study.db'}")
    before = {t.number: (t.params, t.values) for t in stored.trials if t.state.name == "COMPLETE"}
    assert sorted(before) == sorted(set(complete_before) | set(before))

    resumed = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "interrupted trial(s) marked failed and queued again" in resumed.stdout
    trials = pd.read_parquet(out / "trials.parquet")
    assert (trials.state == "complete").sum() == 6  # the budget: exactly `trials` finished trials
    interrupted = trials[trials.state == "interrupted"]
    assert set(interrupted.number) == set(running_before)
    retries = trials[trials.retry_of.notna()]
    assert sorted(int(r) for r in retries.retry_of) == sorted(running_before)
    for _, retry in retries.iterrows():  # the interrupted point is re-run, not skipped
        original = trials[trials.number == int(retry.retry_of)].iloc[0]
        assert retry["param.mechanism.alpha"] == original["param.mechanism.alpha"]
    stored = optuna.load_study(study_name="study", storage=f"sqlite:///{out / 'study.db'}")
    after = {t.number: (t.params, t.values) for t in stored.trials if t.state.name == "COMPLETE"}
    for number, record in before.items():  # no completed trial lost, none run again
        assert after[number] == record
    assert len(after) == 6


def test_the_store_opens_in_optuna_dashboard(plugin_dir, cli):
    wsgi = pytest.importorskip("optuna_dashboard").wsgi
    from wsgiref.util import setup_testing_defaults

    study = write_study(plugin_dir, QUAD.format(trials=2))
    _with_mechanism(study)
    out = plugin_dir / "out"
    assert cli("tune", study, "--out", out, "--no-progress").exit_code == 0
    app = wsgi(f"sqlite:///{out / 'study.db'}")
    environ: dict = {}
    setup_testing_defaults(environ)
    environ["PATH_INFO"] = "/api/studies"
    status: list[str] = []
    body = b"".join(app(environ, lambda s, h, *a: status.append(s)))
    assert status[0].startswith("200")
    assert [s["study_name"] for s in json.loads(body)["study_summaries"]] == ["study"]


@pytest.mark.parametrize(("body", "field", "says"), [
    ('"mechanism.alhpa" = { low = 1.0, high = 2.0 }', "space.mechanism.alhpa", "nearest: 'mechanism.alpha'"),
    ('"mechanism.alpha" = { low = 3.0, high = 2.0 }', "space.mechanism.alpha", "inverted"),
    ('"mechanism.alpha" = { low = 2.0, high = 2.0 }', "space.mechanism.alpha", "empty"),
    ('"mechanism.alpha" = { low = 0.0, high = 2.0, log = true }', "space.mechanism.alpha.low", "log"),
    ('"mechanism.alpha" = { low = 0.5, high = 2.0 }', "space.mechanism.alpha", "greater than or equal to 1"),
    ('"mechanism.alpha" = []', "space.mechanism.alpha", "non-empty list"),
])
def test_bad_space_is_refused_before_any_trial(tmp_path, body, field, says):
    study = write_study(tmp_path, f"""
        [space]
        {body}
        [objectives]
        welfare = "maximize"
        """)
    with pytest.raises(InputError) as err:
        load_study(study)
    assert err.value.field == field and says in str(err.value)


@pytest.mark.parametrize(("top", "tables", "field", "says"), [
    ("", '[objectives]\nwelfar = "maximize"', "objectives.welfar", "did you mean 'welfare'"),
    ("", '[objectives]\nwelfare = "best"', "objectives.welfare", "'maximize' or 'minimize'"),
    ("", '[objectives]\nwelfare = "maximize"\n[constraints]\nparticipation = "at least 0.8"',
     "constraints.participation", "'<= number' or '>= number'"),
    ("", '[objectives]\nwelfare = "maximize"\n[constraints]\nnot_a_metric = "<= 1"', "constraints.not_a_metric",
     "free_rider_profit"),
    ("trials = 0", '[objectives]\nwelfare = "maximize"', "trials", "greater than or equal to 1"),
    ("repeats = 1", '[objectives]\nwelfare = "maximize"\n[constraints]\nparticipation = ">= 0.8"', "repeats",
     "at least 2"),
])
def test_bad_objectives_constraints_and_budget_are_refused(tmp_path, top, tables, field, says):
    study = write_study(tmp_path, f'{top}\n[space]\n"mechanism.alpha" = {{ low = 1.0, high = 2.0 }}\n{tables}\n')
    with pytest.raises(InputError) as err:
        load_study(study)
    assert err.value.field == field and says in str(err.value)


def test_bad_inputs_exit_2_on_the_cli_and_write_nothing(tmp_path, cli):
    study = write_study(tmp_path, '[space]\n"mechanism.alpha" = { low = 3.0, high = 1.0 }\n'
                                  '[objectives]\nwelfare = "maximize"\n')
    out = tmp_path / "out"
    result = cli("tune", study, "--out", out)
    assert result.exit_code == 2 and "space.mechanism.alpha" in " ".join(result.output.split())
    assert not out.exists()


def test_a_store_from_another_study_is_refused(plugin_dir, cli):
    first = write_study(plugin_dir, QUAD.format(trials=2))
    _with_mechanism(first)
    out = plugin_dir / "out"
    assert cli("tune", first, "--out", out, "--no-progress").exit_code == 0
    original = first.read_text()
    first.write_text(original.replace("repeats = 2", "repeats = 3"))  # same name, another definition
    result = cli("tune", first, "--out", out, "--no-progress")
    assert result.exit_code == 2 and "defined differently (changed: repeats)" in " ".join(result.output.split())
    other = plugin_dir / "other.toml"  # another study's name
    other.write_text(original)
    result = cli("tune", other, "--out", out, "--no-progress")
    assert result.exit_code == 2 and "holds the study 'study', not 'other'" in " ".join(result.output.split())
    first.write_text(original.replace("trials = 2", "trials = 3"))  # raising the budget continues the study
    result = cli("tune", first, "--out", out, "--no-progress")
    assert result.exit_code == 0 and "1 trial(s) ran now" in " ".join(result.output.split())


def test_a_dask_cluster_runs_the_same_trials_as_local_workers(tmp_path, cli):
    distributed = pytest.importorskip("dask.distributed")
    study = write_study(tmp_path, """
        trials = 4
        repeats = 2
        unsettled = "allowed"
        [space]
        "mechanism.alpha" = { low = 1.0, high = 4.0 }
        [objectives]
        welfare = "maximize"
        """)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        result = cli("tune", study, "--out", tmp_path / "dask", "--workers", "2", "--scheduler",
                     cluster.scheduler_address, "--no-progress")
    assert result.exit_code == 0, result.output
    result = cli("tune", study, "--out", tmp_path / "local", "--workers", "2", "--no-progress")
    assert result.exit_code == 0, result.output
    # batches of 2 told in trial order: the same trials whichever runs them
    a, b = (pd.read_parquet(tmp_path / d / "trials.parquet").drop(columns=["seconds"]) for d in ("dask", "local"))
    pd.testing.assert_frame_equal(a, b)


def test_an_unreachable_scheduler_is_bad_input(tmp_path, cli):
    study = write_study(tmp_path, '[space]\n"mechanism.alpha" = { low = 1.0, high = 2.0 }\n'
                                  '[objectives]\nwelfare = "maximize"\n')
    result = cli("tune", study, "--out", tmp_path / "o", "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout",
                 "1", "--no-progress")
    assert result.exit_code == 2 and "--scheduler" in result.output


def test_repeated_settings_are_answered_from_the_first_trial(tmp_path, cli):
    study = write_study(tmp_path, """
        trials = 6
        repeats = 2
        sampler = "random"
        unsettled = "allowed"
        [space]
        "mechanism.alpha" = [1.0, 2.0]
        [objectives]
        welfare = "maximize"
        """)
    assert cli("tune", study, "--out", tmp_path / "out", "--no-progress").exit_code == 0
    trials = pd.read_parquet(tmp_path / "out" / "trials.parquet")
    repeats = trials[trials.same_as.notna()]
    assert len(repeats) == 6 - trials["param.mechanism.alpha"].nunique()  # two points: 4 of 6 trials reuse
    for _, r in repeats.iterrows():
        first = trials[trials.number == int(r.same_as)].iloc[0]
        assert r["param.mechanism.alpha"] == first["param.mechanism.alpha"] and r.seconds == 0.0
        assert (r["welfare.mean"], r["welfare.ci_low"]) == (first["welfare.mean"], first["welfare.ci_low"])
    assert not trials[trials.same_as.notna()].pareto.any()
