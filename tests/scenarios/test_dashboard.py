"""The dashboard: its duel model (two mechanisms, one population, stepping together), the export that
reproduces it round for round, the page rendered in-process (step, export, validation messages), the
CLI's bad inputs, and an end-to-end run in a real headless browser (Debian's chromium via
Playwright), which must run in CI."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from coopsim.errors import InputError
from scenarios.dashboard.duel import Duel
from scenarios.registry import resolve_document
from scenarios.runner import execute

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _series_of_run(doc: dict) -> dict[str, dict[str, list[float]]]:
    """What ``coopsim run`` of an exported document gives: per mechanism label, each plotted
    reporter's values round by round."""
    _, _, result = execute(resolve_document(doc, "export"))
    raw = result.frame
    out: dict[str, dict[str, list[float]]] = {}
    for label in raw.mechanism.unique():
        part = raw[(raw.mechanism == label) & (raw.agent == "")]
        out[label] = {v: part[part.variable == v].sort_values("round")["value"].tolist()
                      for v in ("welfare", "accuracy", "participation", "payments")}
    return out


def _series_of(duel: Duel) -> dict[str, dict[str, list[float]]]:
    frame = duel.series()
    return {side: {v: frame[(frame.side == side) & (frame.variable == v)].sort_values("round")["value"].tolist()
                   for v in ("welfare", "accuracy", "participation", "payments")}
            for side in frame.side.unique()}


@pytest.mark.parametrize(("a", "b"), [("revenue_shares", "equal_split"), ("cgsv", "contracts")])
def test_the_export_reproduces_the_duel_round_for_round(a, b):
    duel = Duel(mechanism_a=a, mechanism_b=b, n_principals=25, alpha=2.0, seed=7)
    for _ in range(9):
        duel.step()
    assert duel.rounds_done == 9
    doc = duel.document()
    assert doc["cooperative"]["rounds"] == 9 and [m["mechanism"]["kind"] for m in doc["mechanisms"]] == [a, b]
    assert _series_of_run(doc) == _series_of(duel)  # exact equality, NaN-free reporters


def test_both_sides_meet_the_same_principals_and_a_seed_repeats_itself():
    one, two = Duel(seed=3), Duel(seed=3)
    for duel in (one, two):
        for _ in range(5):
            duel.step()
    a, b = one.cooperatives.values()
    assert [(p.unit_cost, p.behaviour, p.pool_size) for p in a.principals] == \
        [(p.unit_cost, p.behaviour, p.pool_size) for p in b.principals]
    assert _series_of(one) == _series_of(two)


def test_invalid_settings_are_held_as_a_message_not_raised():
    duel = Duel(free_rider=0.7, label_flip=0.5)
    assert duel.error and "at most 1" in duel.error and not duel.running
    duel.step()
    assert duel.rounds_done == 0
    bad = Duel(horizon=3, decision_period=2)
    assert "mechanism.horizon" in bad.error
    assert "alpha" in Duel(alpha=0.5).error


def test_the_contract_menu_shows_who_took_which_item():
    duel = Duel(mechanism_a="contracts", mechanism_b="equal_split", n_principals=12)
    duel.step()
    (menu,) = duel.menus().values()
    assert menu["taken by"].sum() == 12 and menu.iloc[-1]["item"] == "out"


def test_a_scenario_gives_the_starting_settings():
    from scenarios.dashboard.server import settings_from

    start = settings_from("quickstart")
    assert (start["mechanism_a"], start["mechanism_b"]) == ("revenue_shares", "cgsv")
    assert start["n_principals"] == 10 and start["free_rider"] == pytest.approx(0.2) and start["mode"] == "real"
    with pytest.raises(InputError) as err:
        settings_from("contracts")
    assert err.value.field == "scenario"
    with pytest.raises(InputError) as err:
        settings_from("mechanism-duel")  # sybils are not among the dashboard's behaviours
    assert err.value.field == "cooperative.population.behaviours"


# ------------------------------------------------------------------------------------ page, in-process
solara = pytest.importorskip("solara") if not IN_CI else __import__("solara")


def _render(settings: dict):
    import ipyvuetify as v

    from scenarios.dashboard.app import Dashboard, initial_settings, new_duel

    start = {**initial_settings(), **settings}
    model = new_duel(start)
    _, rc = solara.render(solara.AppLayout(children=[Dashboard(model, start)]), handle_error=False)
    return model, rc, v


def test_the_page_steps_the_duel_and_exports_it(tmp_path, monkeypatch):
    monkeypatch.setenv("COOPSIM_DASHBOARD_OUT", str(tmp_path))
    model, rc, v = _render({"n_principals": 15})
    for _ in range(4):
        rc.find(v.Btn, children=["Step"]).widget.click()
    assert model.rounds_done == 4
    rc.find(v.Btn, children=["Export as scenario"]).widget.click()
    (path,) = tmp_path.glob("dashboard-*-round4.toml")
    doc = tomllib.loads(path.read_text())
    assert _series_of_run(doc) == _series_of(model)


def _grid_text(rc, v) -> str:
    """The text of every markdown view in the page's grid (rendered in-process)."""
    found: list[str] = []

    def walk(widget) -> None:
        template = getattr(getattr(widget, "template", None), "template", getattr(widget, "template", None))
        if isinstance(template, str):
            found.append(template)
        for attr in ("children", "items"):
            children = getattr(widget, attr, None)
            for child in children if isinstance(children, list | tuple) else []:
                if hasattr(child, "keys"):
                    walk(child)

    for widget in rc.find(v.VuetifyTemplate).widgets:
        walk(widget)
    return " ".join(found)


def test_the_mechanism_view_shows_only_the_chosen_mechanisms_settings_and_applies_them_on_reset():
    from scenarios.dashboard.app import chosen_mechanism_settings

    chosen_mechanism_settings.value = {}
    try:
        _, rc, v = _render({"mechanism_a": "cgsv", "mechanism_b": "contracts", "n_principals": 12})
        labels = [w.label for w in rc.find(v.Slider).widgets]
        assert "β (CGSV)" in labels and "cost types of the contract menu" in labels
        assert "α (revenue shares)" not in labels and "settlement horizon (rounds)" not in labels
        (beta,) = [w for w in rc.find(v.Slider).widgets if w.label == "β (CGSV)"]
        beta.v_model = 2.5
        assert chosen_mechanism_settings.value == {"beta": 2.5}
        assert "beta=1" in _grid_text(rc, v)  # not before Reset
        rc.find(v.Btn, children=["Reset"]).widget.click()
        assert "A: cgsv (beta=2.5)" in _grid_text(rc, v)
    finally:
        chosen_mechanism_settings.value = {}


def test_invalid_settings_show_the_message_in_the_page():
    _, rc, v = _render({"free_rider": 0.9, "label_flip": 0.5})
    (alert,) = rc.find(v.Alert).widgets
    assert "not valid" in alert.children[0] and "at most 1" in alert.children[0]
    assert rc.find(v.Btn, children=["Export as scenario"]).widget.disabled


# ------------------------------------------------------------------------------------ CLI
def test_cli_bad_inputs_exit_2(cli, tmp_path):
    result = cli("dashboard", "no-such-scenario", "--port", "1")
    assert result.exit_code == 2 and "scenario" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text('scenario = "quickstart"\n[cooperative]\nrounds = -3\n')
    result = cli("dashboard", bad)
    assert result.exit_code == 2 and "cooperative.rounds" in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("dashboard", "--port", port, "--no-fetch-assets")
    assert result.exit_code == 2 and "in use" in " ".join(result.output.split())


def test_without_the_extra_the_command_says_what_to_install(cli, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_solara(name, *args, **kwargs):
        if name == "solara" or name.startswith("solara."):
            raise ImportError("No module named 'solara'", name="solara")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_solara)
    result = cli("dashboard")
    assert result.exit_code == 2 and "[dashboard]" in result.output


# ------------------------------------------------------------------------------------ browser
def _chromium() -> str | None:
    return next((p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()), None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_end_to_end_in_a_headless_browser(tmp_path):
    browser = _chromium()
    if browser is None and not IN_CI:
        pytest.skip("no chromium here (CI installs Debian's chromium; apt-get install chromium)")
    assert browser is not None, "CI must run the browser test: .ci/run installs chromium"
    from playwright.sync_api import sync_playwright

    port = _free_port()
    server = subprocess.Popen([sys.executable, "-c", "from scenarios.cli import main; main()", "dashboard",
                               "--port", str(port), "--out", str(tmp_path / "exports")], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()
                time.sleep(0.5)
        with sync_playwright() as pw:
            chrome = pw.chromium.launch(executable_path=browser, args=["--no-sandbox"])
            page = chrome.new_page(viewport={"width": 1500, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/")
            page.get_by_text("Round 0 of").wait_for(timeout=90_000)
            first = page.locator("img").first.get_attribute("src")
            for k in range(1, 4):
                page.get_by_role("button", name="Step").click()
                page.get_by_text(f"Round {k} of").wait_for(timeout=30_000)
            page.wait_for_function("(src) => document.querySelector('img').getAttribute('src') !== src", arg=first,
                                   timeout=30_000)
            page.get_by_role("button", name="▶").click()  # play: the plots move on their own
            page.get_by_text(re.compile(r"Round (1[0-9]|[2-9][0-9]) of")).wait_for(timeout=60_000)
            page.get_by_role("button", name="❚❚").click()
            page.evaluate("window.scrollTo(0, 0)")
            time.sleep(1.0)
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=False)
            if os.environ.get("COOPSIM_UPDATE_SCREENSHOT"):
                shutil.copyfile(shot, ROOT / "figures" / "dashboard.png")
            # switch mechanism B to CGSV, reset, step twice
            page.locator(".v-input", has_text="mechanism B").locator(".v-select__slot").click()
            page.locator(".menuable__content__active .v-list-item", has_text="cgsv").click()
            page.get_by_role("button", name="Reset").click()
            page.get_by_text("vs B: cgsv").first.wait_for(timeout=30_000)
            for k in range(1, 3):
                page.get_by_role("button", name="Step").click()
                page.get_by_text(f"Round {k} of").wait_for(timeout=30_000)
            shown = page.inner_text("body")
            page.get_by_role("button", name="Export as scenario").click()
            page.get_by_text("coopsim run").wait_for(timeout=30_000)
            chrome.close()
        (path,) = (tmp_path / "exports").glob("*.toml")
        run = _series_of_run(tomllib.loads(path.read_text()))
        for side, values in run.items():  # the page printed each side's last-round numbers (6 digits)
            line = re.search(rf"{re.escape(side)}: welfare ([\d.e+-]+), accuracy ([\d.e+-]+)", shown)
            assert line, (side, shown[-800:])
            assert float(line.group(1)) == pytest.approx(values["welfare"][-1], rel=1e-5)
            assert float(line.group(2)) == pytest.approx(values["accuracy"][-1], rel=1e-5)
        assert shot.stat().st_size > 20_000
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
