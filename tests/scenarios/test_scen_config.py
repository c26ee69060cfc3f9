"""Scenario files, ``--set`` overrides, the registry and the CLI's exit codes."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from coopsim.errors import InputError
from scenarios.config import apply_overrides, parse_override, parse_value, undocumented_fields
from scenarios.registry import registry, resolve

QUICK_CONTRACTS = ["--set", "two_type.surface_p1=[0.5]", "--set", "two_type.surface_n=[4]",
                   "--set", "realisation_draws=100", "--set", "full_constraints=false"]


def test_set_values_are_toml_literals_or_bare_strings():
    assert parse_value("2") == 2 and parse_value("1.5") == 1.5 and parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2] and parse_value('"x y"') == "x y"
    assert parse_value("digits") == "digits"
    assert parse_value("{a = 1}") == {"a": 1}
    assert parse_override("training.epochs=2") == (["training", "epochs"], 2)
    with pytest.raises(InputError, match="--set"):
        parse_override("no-equals-sign")
    with pytest.raises(InputError, match="--set"):
        parse_override("a..b=1")


def test_overrides_apply_in_order_on_a_copy():
    base = {"training": {"epochs": 5, "lr": 0.1}, "seed": 0}
    out = apply_overrides(base, ["training.epochs=2", "training.epochs=3", "mechanism.alpha=1.5"], seed=7)
    assert out == {"training": {"epochs": 3, "lr": 0.1}, "mechanism": {"alpha": 1.5}, "seed": 7}
    assert base["training"]["epochs"] == 5
    with pytest.raises(InputError, match=r"training\.epochs\.x"):
        apply_overrides(base, ["training.epochs.x=1"])


def test_every_scenario_is_documented_and_its_library_file_validates():
    scenarios = registry()
    assert {"contracts", "cgsv-fairness", "attribution-substrate", "value-pluralism"} <= set(scenarios)
    for name, scen in scenarios.items():
        assert scen.description and "\n" not in scen.description, name
        assert undocumented_fields(scen.config) == [], name
        assert scen.defaults_path is not None and scen.defaults_path.is_file(), name
        resolved = resolve(name)
        # the library TOML states the class defaults (nothing hidden in either place)
        assert resolved.config == scen.config(), name


def test_resolve_layers_file_overrides_and_seed(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('scenario = "contracts"\nseed = 3\n[model]\nk = 2.0\n')
    r = resolve(str(path), ["model.value_scale=50"])
    assert (r.label, r.scenario.name, r.config.seed, r.config.model.k, r.config.model.value_scale) == (
        "mine", "contracts", 3, 2.0, 50.0)
    assert r.config.two_type.costs == [0.02, 0.01]  # library defaults underneath
    assert resolve(str(path), seed=9).config.seed == 9


@pytest.mark.parametrize(("content", "field"), [
    ('scenario = "contracts"\n[model]\nkk = 1.0\n', "model.kk"),                 # unknown key
    ('scenario = "contracts"\n[model]\nk = "big"\n', "model.k"),                 # wrong type
    ('scenario = "contracts"\n[two_type]\np1 = 1.5\n', "two_type.p1"),           # out of range
    ('scenario = "contracts"\n[five_type.settings]\nmixed = [0.1, 0.2]\n', "five_type.settings"),
    ('scenario = "nope"\n', "scenario"),
    ('[model]\nk = 1.0\n', "scenario"),
    ('scenario = "contracts"\nseed = -1\n', "seed"),
    ('scenario = "contracts"\n[model\n', "bad.toml"),                            # TOML syntax
])
def test_invalid_scenario_file_exits_2_names_the_field_and_writes_nothing(cli, tmp_path, content, field):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    out = tmp_path / "out"
    result = cli("run", path, "--out", out)
    assert result.exit_code == 2, result.output
    assert field in result.output
    assert not out.exists()


@pytest.mark.parametrize(("args", "field"), [
    (["--set", "model.k=abc"], "model.k"),
    (["--set", "two_type.n_participants=0"], "two_type.n_participants"),
    (["--set", "typo=1"], "typo"),
    (["--set", "five_type.probs=[0.5, 0.6]"], "five_type.probs"),
])
def test_invalid_override_exits_2(cli, tmp_path, args, field):
    out = tmp_path / "out"
    result = cli("run", "contracts", *args, "--out", out)
    assert result.exit_code == 2, result.output
    assert field in result.output
    assert not out.exists()


def test_unknown_scenario_and_unknown_key_messages_say_what_is_allowed(cli, tmp_path):
    result = cli("run", "no-such-scenario", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "contracts" in result.output
    result = cli("run", "contracts", "--set", "model.kk=1", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "value_scale" in result.output  # lists the allowed fields


def test_overrides_and_seed_reach_the_stored_config(cli, tmp_path):
    out = tmp_path / "c"
    result = cli("run", "contracts", *QUICK_CONTRACTS, "--set", "model.k=1.5", "--seed", "11", "--out", out)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 11 and summary["config"]["model"]["k"] == 1.5
    assert summary["config"]["two_type"]["surface_n"] == [4]
    assert "figures:" in result.output and str(out.resolve() / "figures") in result.output.replace("\n", "")


def test_internal_error_exits_1_and_writes_nothing(cli, tmp_path, monkeypatch):
    scen = registry()["contracts"]

    def boom(cfg, seed):
        raise RuntimeError("deliberate failure")

    monkeypatch.setitem(registry(), "contracts", dataclasses.replace(scen, run=boom))
    result = cli("run", "contracts", "--out", tmp_path / "o")
    assert result.exit_code == 1 and "deliberate failure" in result.output
    assert not (tmp_path / "o").exists()


def test_list_shows_every_scenario(cli):
    result = cli("list")
    assert result.exit_code == 0
    for name in registry():
        assert name in result.output


def test_square_brackets_in_values_survive_in_error_messages(cli, tmp_path):
    """Error text is printed as is: a list value like [digits] is not taken for console markup."""
    result = cli("run", "cgsv-fairness", "--set", "datasets=[digits]", "--out", tmp_path / "o")
    assert result.exit_code == 2 and "[digits]" in result.output


@pytest.mark.parametrize("args", [["--seed", str(2**63)], ["--set", f"seed={2**63}"]])
def test_a_seed_beyond_63_bits_is_bad_input(cli, tmp_path, args):
    result = cli("run", "contracts", *args, "--out", tmp_path / "o")
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "o").exists()


def test_an_unusable_out_folder_is_bad_input_before_any_work(cli, tmp_path, monkeypatch):
    scen = registry()["contracts"]

    def never(cfg, seed):
        raise AssertionError("ran although --out was unusable")

    monkeypatch.setitem(registry(), "contracts", dataclasses.replace(scen, run=never))
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out in (afile, afile / "below"):
        result = cli("run", "contracts", "--out", out)
        assert result.exit_code == 2 and "--out" in result.output, result.output


def test_a_rerun_into_a_folder_replaces_the_earlier_run(cli, tmp_path):
    """Figures and tables of an earlier run (another scenario) do not linger beside the new ones;
    summary.json is written last; files get the usual permissions (not mkstemp's 0600)."""
    out = tmp_path / "o"
    assert cli("run", "contracts", *QUICK_CONTRACTS, "--out", out).exit_code == 0
    before = {p.name for p in (out / "figures").glob("*.png")}
    (out / "figures" / "mine.png").write_bytes(b"a user's own file: never removed")
    result = cli("run", "quickstart", "--set", "cooperative.rounds=2", "--set", "cooperative.training.mode=surrogate",
                 "--out", out)
    assert result.exit_code == 0, result.output
    after = {p.name for p in (out / "figures").glob("*.png")} - {"mine.png"}
    assert after and not before & after and "participation_accuracy.png" in after
    assert (out / "figures" / "mine.png").exists()
    assert {p.name for p in (out / "tables").glob("*.csv")} == {"mechanisms.csv", "paired_vs_baseline.csv",
                                                                       "robustness.csv"}
    assert json.loads((out / "summary.json").read_text())["scenario"] == "quickstart"
    assert (out / "summary.json").stat().st_mtime_ns >= max(p.stat().st_mtime_ns for p in out.rglob("*.png"))
    listed = json.loads((out / "summary.json").read_text())["files"]
    assert "results.parquet" in listed and "figures/participation_accuracy.png" in listed
    mask = os.umask(0)
    os.umask(mask)
    assert (out / "results.parquet").stat().st_mode & 0o777 == 0o666 & ~mask


def test_an_unsolved_contract_setting_is_reported_not_fatal(cli, tmp_path):
    """A setting whose menu the solver cannot certify is stored with success=False (all_solved false),
    not realised: the scenario's job is to report it."""
    bad = ["--set", "two_type.costs=[0.7326448957971787,0.00011941692410650669]",
           "--set", "two_type.p1=0.48208910665331295", "--set", "two_type.n_participants=2",
           "--set", "model.k=1.8052121175355478", "--set", "model.value_scale=5.821931112113396"]
    out = tmp_path / "o"
    result = cli("run", "contracts", *QUICK_CONTRACTS, *bad, "--out", out)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["all_solved"] is False


def test_a_symlinked_figures_folder_is_written_through(cli, tmp_path):
    out, elsewhere = tmp_path / "o", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "figures").symlink_to(elsewhere, target_is_directory=True)
    result = cli("run", "contracts", *QUICK_CONTRACTS, "--out", out)
    assert result.exit_code == 0, result.output
    listed = json.loads((out / "summary.json").read_text())["files"]
    assert any(f.startswith("figures/") for f in listed) and list(elsewhere.glob("*.png"))
