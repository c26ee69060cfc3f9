"""Sweeps: seeds from SeedSequence, validation before anything runs, resume after SIGKILL, Dask."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scenarios.sweep import load_sweep, plan, run_seeds

ROOT = Path(__file__).resolve().parents[2]

# six runs of real TL/FedAvg training, about a second each: slow enough to kill one mid-way
ATTRIBUTION_SWEEP = """
scenario = "attribution-substrate"
seed = 11
repeats = 3
[base]
replicates = 1
fedavg_shapley = false
"training.epochs" = 3
"training.local_epochs" = 1
"data.levels" = [0.0, 0.4, 0.8]
[grid]
"training.lr" = [0.2, 0.5]
"""

CONTRACTS_SWEEP = """
scenario = "contracts"
seed = 3
repeats = 2
[base]
realisation_draws = 50
full_constraints = false
"two_type.surface_p1" = [0.5]
"two_type.surface_n" = [3]
[grid]
"model.k" = [1.0, 1.5]
"""


def _write(tmp_path: Path, text: str, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in frame.columns if c != "value"]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


def test_seeds_come_from_seed_sequence_spawn_per_point_and_repeat():
    seeds = run_seeds(7, 3, 2)
    assert seeds == run_seeds(7, 3, 2)
    assert len({s for row in seeds for s in row}) == 6
    child = np.random.SeedSequence(7).spawn(3)[1].spawn(2)[0]
    assert seeds[1][0] == int(child.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    common = run_seeds(7, 3, 2, common=True)
    assert common[0] == common[1] == common[2] and common[0][0] != common[0][1]
    # adding repeats keeps the existing runs' seeds
    assert [row[:2] for row in run_seeds(7, 3, 4)] == seeds


def test_plan_is_cartesian_and_run_ids_are_stable(tmp_path):
    grid = '"model.k" = [1.0, 1.5]\n"model.value_scale" = [50.0, 100.0, 200.0]'
    path = _write(tmp_path, CONTRACTS_SWEEP.replace('"model.k" = [1.0, 1.5]', grid))
    specs = plan(load_sweep(path), path)
    assert len(specs) == 2 * 3 * 2
    assert len({s.run_id for s in specs}) == len(specs)
    assert {(s.point["model.k"], s.point["model.value_scale"]) for s in specs} == {
        (k, v) for k in (1.0, 1.5) for v in (50.0, 100.0, 200.0)}
    assert [s.run_id for s in plan(load_sweep(path), path)] == [s.run_id for s in specs]


@pytest.mark.parametrize(("text", "field"), [
    (CONTRACTS_SWEEP.replace('"model.k" = [1.0, 1.5]', '"model.k" = [1.0, -1.0]'), "model.k"),
    (CONTRACTS_SWEEP.replace('"model.k" = [1.0, 1.5]', '"model.k" = 1.0'), "grid"),
    (CONTRACTS_SWEEP.replace("repeats = 2", "repeats = 0"), "repeats"),
    (CONTRACTS_SWEEP.replace("repeats = 2", "repeat = 2"), "repeat"),
    (CONTRACTS_SWEEP.replace("realisation_draws = 50", "realisation_drawz = 50"), "realisation_drawz"),
    (CONTRACTS_SWEEP + "seed = [1, 2]\n", "grid.seed"),  # run seeds are spawned from the root seed
    (CONTRACTS_SWEEP.replace("[base]\n", "[base]\nseed = 5\n"), "base.seed"),
])
def test_invalid_sweep_exits_2_before_writing(cli, tmp_path, text, field):
    out = tmp_path / "out"
    result = cli("sweep", _write(tmp_path, text), "--out", out)
    assert result.exit_code == 2, result.output
    assert field in result.output
    assert not out.exists()


def test_sweep_resumes_after_sigkill_to_the_uninterrupted_result(cli, tmp_path, pngs):
    path = _write(tmp_path, ATTRIBUTION_SWEEP)
    full, broken = tmp_path / "full", tmp_path / "broken"
    result = cli("sweep", path, "--out", full, "--no-progress")
    assert result.exit_code == 0, result.output

    cmd = [sys.executable, "-c", "from scenarios.cli import main; main()", "sweep", str(path), "--out", str(broken),
           "--workers", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((broken / "runs").glob("*.parquet"))) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the sweep finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = {p.stem for p in (broken / "runs").glob("*.parquet")}
    assert 2 <= len(done_before) < 6
    assert not (broken / "results.parquet").exists()

    result = cli("sweep", path, "--out", broken, "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"{6 - len(done_before)} ran now, {len(done_before)} reused" in result.output
    runs = sorted(p.stem for p in (broken / "runs").glob("*.parquet"))
    assert len(runs) == 6 and set(done_before) <= set(runs)
    assert not list((broken / "runs").glob(".*"))  # no stray temporary files

    a = pd.read_parquet(full / "results.parquet")
    b = pd.read_parquet(broken / "results.parquet")
    assert a["run_id"].nunique() == b["run_id"].nunique() == 6
    assert b.groupby("run_id")[["point", "repeat"]].first().drop_duplicates().shape[0] == 6
    pd.testing.assert_frame_equal(_sorted(a), _sorted(b))
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (full, broken))
    assert sa["runs"] == sb["runs"] and sa["points"] == sb["points"]
    # where each invocation's time went: every phase timed, none negative, the runs phase only for runs made now
    for summary in (sa, sb):
        timing = summary["timing"]
        assert timing["workers"] == 1
        assert {"plan_s", "runs_s", "combine_s", "figures_s"} <= set(timing) and min(timing.values()) >= 0
    pngs(broken / "figures", minimum=1)
    # per grid point: each headline metric's estimate over its 3 repeats; point 1 against point 0, unpaired
    assert [pt["point"] for pt in sa["points"]] == [0, 1]
    for pt in sa["points"]:
        values = [r["metrics"]["spearman.TL one-step (V3)"] for r in sa["runs"] if r["point"] == pt["point"]]
        est = pt["metrics"]["spearman.TL one-step (V3)"]
        assert est["n"] == 3 and est["mean"] == pytest.approx(np.mean(values)) and est["ci_low"] <= est["mean"]
    (comp,) = sa["comparisons"]
    assert comp["design"] == "unpaired" and comp["point"] == 1
    assert comp["metrics"]["spearman.TL one-step (V3)"]["verdict"] in ("positive", "negative", "inconclusive")


def test_dask_scheduler_path_matches_local_run(cli, tmp_path, pngs):
    distributed = pytest.importorskip("dask.distributed")
    path = _write(tmp_path, CONTRACTS_SWEEP)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        result = cli("sweep", path, "--out", tmp_path / "dask", "--scheduler", cluster.scheduler_address,
                     "--no-progress")
    assert result.exit_code == 0, result.output
    assert "4 ran now" in result.output
    result = cli("sweep", path, "--out", tmp_path / "local", "--workers", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    a = pd.read_parquet(tmp_path / "dask" / "results.parquet")
    b = pd.read_parquet(tmp_path / "local" / "results.parquet")
    drop = ["value"]
    keep = a["variable"] != "solve_seconds"  # wall-clock times differ
    pd.testing.assert_frame_equal(_sorted(a[keep]).drop(columns=drop), _sorted(b[b["variable"] != "solve_seconds"])
                                  .drop(columns=drop))
    np.testing.assert_allclose(_sorted(a[keep])["value"], _sorted(b[b["variable"] != "solve_seconds"])["value"],
                               rtol=1e-9, equal_nan=True)
    pngs(tmp_path / "dask" / "figures", minimum=1)
    result = cli("figures", tmp_path / "dask")
    assert result.exit_code == 0, result.output


def test_unreachable_scheduler_is_bad_input(cli, tmp_path):
    result = cli("sweep", _write(tmp_path, CONTRACTS_SWEEP), "--out", tmp_path / "o",
                 "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "1", "--no-progress")
    assert result.exit_code == 2, result.output
    assert "--scheduler" in result.output


def test_a_malformed_scheduler_address_is_bad_input(cli, tmp_path):
    result = cli("sweep", _write(tmp_path, CONTRACTS_SWEEP), "--out", tmp_path / "o",
                 "--scheduler", "notanaddress", "--no-progress")
    assert result.exit_code == 2 and "--scheduler" in result.output, result.output


def test_figures_finds_runs_and_sweeps_at_any_depth(cli, tmp_path):
    from scenarios.result import write_parquet

    folder = tmp_path / "results" / "sweeps" / "deep"
    write_parquet(folder / "results.parquet", pd.DataFrame({"x": [1.0]}))
    (folder / "summary.json").write_text(json.dumps({"kind": "sweep", "scenario": "contracts", "runs": [],
                                                     "coopsim_version": "0.2.0",
                                                     "files": ["results.parquet", "figures/stale.png"]}))
    (folder / "figures").mkdir()
    (folder / "figures" / "stale.png").write_bytes(b"old")  # coopsim wrote it (listed), no longer drawn
    (folder / "figures" / "mine.png").write_bytes(b"user")  # not coopsim's: never touched
    result = cli("figures", tmp_path / "results")
    assert result.exit_code == 0, result.output
    assert "deep" in result.output.replace("\n", "")
    assert not (folder / "figures" / "stale.png").exists() and (folder / "figures" / "mine.png").exists()
    assert json.loads((folder / "summary.json").read_text())["files"] == ["results.parquet"]


def test_example_sweep_file_plans():
    path = ROOT / "examples" / "sweep_attribution.toml"
    specs = plan(load_sweep(path), path)
    assert len(specs) == 2 * 2 * 3


def test_figures_of_results_from_before_intervals_are_refused_plainly(cli, tmp_path):
    """A folder written before summaries carried intervals (coopsim < 0.2) cannot be redrawn: exit 2
    with what to do, not a traceback."""
    from scenarios.result import write_parquet

    folder = tmp_path / "old"
    write_parquet(folder / "results.parquet", pd.DataFrame({"x": [1.0]}))
    (folder / "summary.json").write_text(json.dumps({"scenario": "quickstart", "coopsim_version": "0.1.0"}))
    result = cli("figures", folder)
    assert result.exit_code == 2 and "rerun" in result.output, result.output
