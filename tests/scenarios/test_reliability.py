"""Bad input reported all at once, bounded sizes, a file's mappings replacing the defaults, and
Ctrl-C stopping a sweep cleanly with a way to resume."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_a_file_with_three_mistakes_names_all_three_and_writes_nothing(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('scenario = "free-riding"\nreplicates = 0\nfinal_window = 2.0\n[cooperative]\nroundz = 5\n')
    out = tmp_path / "out"
    result = cli("run", bad, "--out", out)
    assert result.exit_code == 2, result.output
    for field in ("replicates=0", "final_window=2.0", "cooperative.roundz"):
        assert field in result.output, result.output
    assert "3 problems" in result.output and "Traceback" not in result.output
    assert not out.exists()


def test_set_values_and_file_values_are_reported_together(cli, tmp_path):
    result = cli("run", "attribution-substrate", "--set", "replicates=0", "--set", "training.lr=-1",
                 "--set", "data.noise=blur", "--out", tmp_path / "o")
    assert result.exit_code == 2
    for field in ("replicates", "training.lr", "data.noise"):
        assert field in result.output, result.output


def test_a_mapping_in_a_file_replaces_the_default_mapping(tmp_path):
    from scenarios.registry import resolve

    path = tmp_path / "s.toml"
    path.write_text('scenario = "free-riding"\n[cooperative.population]\nbehaviours = { honest = 1.0 }\n')
    cfg = resolve(str(path)).config
    assert cfg.cooperative.population.behaviours == {"honest": 1.0}  # not merged with free_rider = 0.2
    assert cfg.cooperative.rounds == 80  # sections still merge key by key with the library defaults


@pytest.mark.parametrize(("args", "field"), [
    (["--set", "cooperative.rounds=99999999999999999999999999"], "cooperative.rounds"),
    (["--set", "cooperative.population.n_principals=1e12"], "cooperative.population.n_principals"),
    (["--set", "cooperative.rounds=900000"], "replicates"),  # 75 estimated hours: refused before running
])
def test_unbounded_sizes_are_refused_with_the_limit_named(cli, tmp_path, args, field):
    result = cli("run", "quickstart", *args, "--out", tmp_path / "o")
    assert result.exit_code == 2 and field in result.output, result.output
    assert not (tmp_path / "o").exists()


def test_an_estimated_long_run_can_be_allowed_explicitly():
    from sim import CooperativeConfig

    cfg = CooperativeConfig.model_validate({"rounds": 900_000, "population": {"n_principals": 100},
                                            "allow_long_runs": True})
    assert cfg.estimated_hours() > 12


def test_empty_and_oversized_sweep_files_are_errors(cli, tmp_path):
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    result = cli("sweep", empty, "--out", tmp_path / "e", "--no-progress")
    assert result.exit_code == 2 and "scenario" in result.output
    big = tmp_path / "big.toml"
    big.write_text('scenario = "contracts"\nrepeats = 100\n[grid]\n"model.k" = [' +
                   ", ".join(str(1.0 + i / 1000) for i in range(1000)) + "]\n")
    result = cli("sweep", big, "--out", tmp_path / "b", "--no-progress")
    assert result.exit_code == 2 and "100,000 runs" in result.output and "allow_large" in result.output


SWEEP = """
scenario = "free-riding"
seed = 2
repeats = 6
[base]
replicates = 1
"cooperative.rounds" = 15
"cooperative.training.mode" = "surrogate"
"cooperative.population.n_principals" = 200
"""


def test_ctrl_c_stops_a_sweep_cleanly_and_the_same_command_resumes_it(tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP)
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from scenarios.cli import main; main()", "sweep", str(path), "--out", str(out),
           "--no-progress"]
    # a user's Ctrl-C in a terminal: SIGINT at its default (a test suite started in the background, as
    # `cmd &` in a script, inherits SIGINT ignored, and Python then never raises KeyboardInterrupt)
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list((out / "runs").glob("*.parquet")):
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted" in output and "resumes" in output and "Traceback" not in output
    assert not (out / "summary.json").exists()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(list((out / "runs").glob("*.parquet"))) == 6 and (out / "summary.json").exists()


FAILING = """
scenario = "free-riding"
seed = 1
repeats = 1
[base]
replicates = 1
mechanisms = [{ label = "revenue shares", mechanism = { kind = "revenue_shares" } }]
"cooperative.rounds" = 2
"cooperative.population.n_principals" = 6
"cooperative.population.behaviours" = { honest = 0.5, scaled_gradient = 0.5 }
"cooperative.training.standalone_epochs" = 1
"cooperative.training.guard_ratio" = 0
[grid]
"cooperative.population.gradient_scale" = [1.0, 1e20]
"""


def test_a_failed_run_is_recorded_and_the_sweep_goes_on_then_combine_only_rebuilds(cli, tmp_path):
    import json

    import pandas as pd
    import pyarrow.parquet as pq

    path = tmp_path / "sweep.toml"
    path.write_text(FAILING)
    out = tmp_path / "out"
    result = cli("sweep", path, "--out", out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert "1 failed" in result.output and "retry" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["n_runs"], summary["n_finished"], summary["n_failed"], summary["n_missing"]) == (2, 1, 1, 0)
    assert "training.guard_ratio" in summary["failed"][0]["error"]  # the run's own error, named
    runs = pd.read_parquet(out / "runs.parquet")
    assert runs.status.tolist() == ["finished", "failed"] and runs.error.iloc[1]
    assert "param.cooperative.rounds" in runs and runs["param.cooperative.rounds"].iloc[0] == 2
    # the combined table is narrow: parameters live once per run in runs.parquet, keys are dictionaries
    schema = pq.read_schema(out / "results.parquet")
    assert not [n for n in schema.names if n.startswith("param.")]
    assert str(schema.field("variable").type).startswith("dictionary")
    before = pd.read_parquet(out / "results.parquet")
    (out / "results.parquet").unlink()
    (out / "summary.json").unlink()
    result = cli("sweep", path, "--out", out, "--no-progress", "--combine-only")
    assert result.exit_code == 0, result.output
    assert "0 ran now" in result.output
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), before)
    assert json.loads((out / "summary.json").read_text())["n_failed"] == 1


def test_workers_exit_when_the_coordinator_is_killed(tmp_path):
    """kill -9 of a joblib sweep leaves no worker processes holding memory."""
    path = tmp_path / "sweep.toml"
    path.write_text(SWEEP.replace("repeats = 6", "repeats = 40"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from scenarios.cli import main; main()", "sweep", str(path), "--out", str(out),
           "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    children: list[int] = []
    while time.monotonic() < deadline and proc.poll() is None:
        children = _children(proc.pid)
        if len(children) >= 2 and list((out / "runs").glob("*.parquet")):
            break
        time.sleep(0.1)
    assert proc.poll() is None and len(children) >= 2, "no workers seen while the sweep ran"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and [c for c in children if _alive(c)]:
        time.sleep(0.2)
    left = [c for c in children if _alive(c)]
    for c in left:  # do not leave them to the rest of the suite
        os.kill(c, signal.SIGKILL)
    assert not left, f"workers outlived the coordinator: {left}"


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False
