"""coopsim's reliability suite: bad input, interrupts, resumes. Prints a markdown table.

    python scripts/reliability.py            # about 2 minutes on 2 cores

1. **Bad input** — every case in :data:`CASES` runs the CLI in-process. Each must exit with code 2,
   show no traceback, name the field (the expected text appears in the message), and write nothing.
2. **SIGKILL** — a sweep runs in a subprocess and is killed with SIGKILL at five random moments (a
   seeded generator picks them: after a random number of stored runs, plus a jitter, so kills land
   during runs and during the combine), then restarted each time. The test passes when every run is present
   exactly once and ``results.parquet`` equals the one from an uninterrupted sweep.
3. **Ctrl-C** — SIGINT stops the sweep with exit code 130 and a message saying how to resume. The same
   command then finishes it.

``tests/scenarios/test_reliability_suite.py`` runs the same functions, so the suite and the tests
cannot drift apart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--set", "cooperative.rounds=2", "--set", "cooperative.training.mode=surrogate", "--set", "replicates=1"]


@dataclass(frozen=True)
class Case:
    """One kind of bad input: the CLI arguments (``{tmp}`` is a scratch folder, ``{file}`` a file
    holding ``content``), and text the error message must contain."""

    name: str
    args: tuple[str, ...]
    expect: str
    content: str | None = None


CASES: tuple[Case, ...] = (
    Case("unknown scenario name", ("run", "no-such-scenario"), "scenario"),
    Case("missing scenario file", ("run", "{tmp}/missing.toml"), "missing.toml"),
    Case("TOML syntax error", ("run", "{file}"), "valid TOML", "scenario = \n"),
    Case("file without a scenario key", ("run", "{file}"), "scenario", "replicates = 2\n"),
    Case("unknown top-level field", ("run", "{file}"), "replicatez", 'scenario = "quickstart"\nreplicatez = 2\n'),
    Case("unknown nested field", ("run", "quickstart", "--set", "cooperative.roundz=3"), "cooperative.roundz"),
    Case("replicates below 1", ("run", "quickstart", "--set", "replicates=0"), "replicates"),
    Case("replicates above the bound", ("run", "quickstart", "--set", "replicates=1000"), "replicates"),
    Case("final window above 1", ("run", "quickstart", "--set", "final_window=2.0"), "final_window"),
    Case("confidence level above 1", ("run", "quickstart", "--ci-level", "1.5"), "ci_level"),
    Case("negative seed", ("run", "quickstart", "--seed", "-1"), "seed"),
    Case("seed beyond 63 bits", ("run", "quickstart", "--seed", str(2**64)), "seed"),
    Case("--set without '='", ("run", "quickstart", "--set", "replicates"), "--set"),
    Case("--set through a non-table", ("run", "quickstart", "--set", "replicates.x=1"), "replicates"),
    Case("astronomical rounds", ("run", "quickstart", "--set", "cooperative.rounds=99999999999999999999"),
         "cooperative.rounds"),
    Case("a trillion principals", ("run", "free-riding", "--set", "cooperative.population.n_principals=1e12"),
         "n_principals"),
    Case("run estimated at 75 hours", ("run", "quickstart", "--set", "cooperative.rounds=900000"), "allow_long_runs"),
    Case("behaviour shares not summing to 1",
         ("run", "quickstart", "--set", "cooperative.population.behaviours={honest=0.5}"), "behaviours"),
    Case("unknown behaviour", ("run", "quickstart", "--set", "cooperative.population.behaviours={robot=1.0}"),
         "behaviours"),
    Case("unknown strategy", ("run", "quickstart", "--set", "cooperative.population.strategy=psychic"), "strategy"),
    Case("unknown mechanism kind",
         ("run", "quickstart", "--set", 'mechanisms=[{label="x", mechanism={kind="lottery"}}]'), "kind"),
    Case("α below 1", ("run", "quickstart", "--set",
                       'mechanisms=[{label="x", mechanism={kind="revenue_shares", alpha=0.5}}]'), "alpha"),
    Case("horizon not dividing the decision period",
         ("run", "quickstart", "--set", 'mechanisms=[{label="x", mechanism={kind="revenue_shares", horizon=3}}]'),
         "horizon"),
    Case("unknown dataset", ("run", "quickstart", "--set", "cooperative.training.dataset=imagenet"), "dataset"),
    Case("negative learning rate", ("run", "quickstart", "--set", "cooperative.training.lr=-1"), "lr"),
    Case("duplicate mechanism labels", ("run", "quickstart", "--set",
                                        'mechanisms=[{label="a"}, {label="a"}]'), "mechanisms"),
    Case("baseline that is no mechanism", ("run", "quickstart", "--set", 'baseline="nobody"'), "baseline"),
    Case("shared mechanism block in a sim scenario", ("run", "quickstart", "--set", "cooperative.mechanism.alpha=3"),
         "cooperative.mechanism"),
    Case("negative β", ("run", "cgsv-fairness", "--set", "betas=[-1.0]"), "betas"),
    Case("label noise of the wrong length", ("run", "cgsv-fairness", "--set", "label_noise=[0.1]"), "label_noise"),
    Case("noise level out of range", ("run", "attribution-substrate", "--set", "data.levels=[0.0, 1.5]"),
         "data.levels"),
    Case("unknown noise kind", ("run", "attribution-substrate", "--set", "data.noise=blur"), "data.noise"),
    Case("contract costs not decreasing", ("run", "contracts", "--set", "two_type.costs=[0.01, 0.02]"), "costs"),
    Case("type probabilities not summing to 1", ("run", "contracts", "--set", "five_type.probs=[0.5, 0.1]"),
         "probs"),
    Case("--out is a file", ("run", "quickstart", "--out", "{file}"), "--out", "not a folder\n"),
    Case("three mistakes at once", ("run", "{file}"), "3 problems",
         'scenario = "free-riding"\nreplicates = 0\nfinal_window = 2.0\n[cooperative]\nroundz = 5\n'),
    Case("empty sweep file", ("sweep", "{file}"), "scenario", ""),
    Case("grid value that is not a list", ("sweep", "{file}"), "grid",
         'scenario = "contracts"\n[grid]\n"model.k" = 1.0\n'),
    Case("seed in a sweep's base", ("sweep", "{file}"), "seed", 'scenario = "contracts"\n[base]\nseed = 3\n'),
    Case("sweep of 100,000 runs", ("sweep", "{file}"), "allow_large",
         'scenario = "contracts"\nrepeats = 100\n[grid]\n"model.k" = [' +
         ", ".join(f"{1 + i / 1000}" for i in range(1000)) + "]\n"),
    Case("zero workers", ("sweep", "{file}", "--workers", "0"), "workers", 'scenario = "contracts"\n'),
    Case("malformed scheduler address", ("sweep", "{file}", "--scheduler", "notanaddress"), "--scheduler",
         'scenario = "contracts"\n'),
    Case("figures of an empty folder", ("figures", "{tmp}"), "RESULTS_DIR"),
    Case("demo with zero epochs", ("demo", "--epochs", "0", "--out", "{tmp}/demo"), "epochs"),
)


def check_case(case: Case, workdir: Path) -> tuple[bool, str]:
    """Run one bad-input case in-process; (passed, why not)."""
    from typer.testing import CliRunner

    from scenarios.cli import app

    workdir.mkdir(parents=True, exist_ok=True)
    file = workdir / "input.toml"
    if case.content is not None:
        file.write_text(case.content)
    out = workdir / "out"
    args = [a.replace("{tmp}", str(workdir)).replace("{file}", str(file)) for a in case.args]
    if args[0] in ("run", "sweep") and "--out" not in args:
        args += ["--out", str(out)]
    before = set(workdir.rglob("*"))
    result = CliRunner().invoke(app, args)
    text = result.output
    problems = []
    if result.exit_code != 2:
        problems.append(f"exit {result.exit_code}")
    if "Traceback" in text:
        problems.append("traceback shown")
    if case.expect not in text:
        problems.append(f"'{case.expect}' not named")
    written = set(workdir.rglob("*")) - before
    if written:
        problems.append(f"wrote {sorted(p.name for p in written)[:3]}")
    return not problems, "; ".join(problems)


SWEEP = """
scenario = "free-riding"
seed = 5
repeats = 8
[base]
replicates = 1
mechanisms = [{ label = "equal split", mechanism = { kind = "equal_split" } },
              { label = "revenue shares", mechanism = { kind = "revenue_shares" } }]
"cooperative.rounds" = 12
"cooperative.training.mode" = "surrogate"
"cooperative.population.n_principals" = 120
[grid]
"cooperative.population.valuation" = [50.0, 100.0]
"""


def _sweep_cmd(path: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", "from scenarios.cli import main; main()", "sweep", str(path), "--out", str(out),
            "--workers", "2", "--no-progress"]


def _frame(out: Path):
    import pandas as pd

    df = pd.read_parquet(out / "results.parquet")
    for col in df.columns:
        if str(df[col].dtype) == "category":
            df[col] = df[col].astype(str)
    return df.sort_values(list(df.columns[:-1].drop("value", errors="ignore"))).reset_index(drop=True)


def kill_and_resume(kills: int = 5, seed: int = 0, log: Callable[[str], None] = print) -> dict[str, int]:
    """SIGKILL a sweep at ``kills`` random moments, restart it after each, and compare with an
    uninterrupted sweep. Returns counts: kills that hit a live process, runs lost, duplicated, and
    whether the results are identical (1/0)."""
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.toml"
        path.write_text(SWEEP)
        full, broken = Path(tmp) / "full", Path(tmp) / "broken"
        started = time.perf_counter()
        subprocess.run(_sweep_cmd(path, full), cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        duration = time.perf_counter() - started
        n_runs = len(list((full / "runs").glob("*.parquet")))
        # random moments: after a random number of stored runs (n_runs: during the combine), plus a jitter
        targets = np.sort(rng.integers(1, n_runs + 1, size=kills))
        hits = 0
        for k, target in enumerate(targets):
            proc = subprocess.Popen(_sweep_cmd(path, broken), cwd=ROOT, start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10 * duration + 60
            while (proc.poll() is None and time.monotonic() < deadline
                   and len(list((broken / "runs").glob("*.parquet"))) < target):
                time.sleep(0.02)
            time.sleep(float(rng.uniform(0.0, 0.3)))
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                hits += 1
            proc.wait(timeout=60)
            log(f"kill {k + 1} (after {target} stored runs): "
                f"{'hit a live sweep' if proc.returncode == -signal.SIGKILL else 'sweep had ended'}, "
                f"{len(list((broken / 'runs').glob('*.parquet')))} runs stored")
        subprocess.run(_sweep_cmd(path, broken), cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        a, b = _frame(full), _frame(broken)
        expected = {p.stem for p in (full / "runs").glob("*.parquet")}
        stored = [p.stem for p in (broken / "runs").glob("*.parquet")]
        per_run = b.groupby("run_id", observed=True).size()
        lost = len(expected - set(stored))
        duplicated = int((per_run != a.groupby("run_id", observed=True).size().reindex(per_run.index)).sum())
        identical = int(a.shape == b.shape and a.equals(b))
        return {"kills": kills, "hits": hits, "runs": len(expected), "lost": lost, "duplicated": duplicated,
                "identical": identical}


def interrupt_and_resume() -> dict[str, object]:
    """SIGINT (Ctrl-C) a sweep, then run the same command again."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sweep.toml"
        path.write_text(SWEEP)
        out = Path(tmp) / "out"
        proc = subprocess.Popen(_sweep_cmd(path, out), cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not list((out / "runs").glob("*.parquet")):
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        text, _ = proc.communicate(timeout=60)
        again = subprocess.run(_sweep_cmd(path, out), cwd=ROOT, capture_output=True, text=True, timeout=300)
        return {"exit": proc.returncode, "message": "resumes" in text and "Traceback" not in text,
                "resumed": again.returncode == 0 and (out / "summary.json").is_file()}


def main() -> None:
    print("| bad input | exit 2, field named, no traceback, nothing written |")
    print("|---|---|")
    passed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, case in enumerate(CASES):
            ok, why = check_case(case, Path(tmp) / f"c{i}")
            passed += ok
            print(f"| {case.name} | {'yes' if ok else 'NO: ' + why} |")
    print(f"\n{passed} of {len(CASES)} kinds of bad input handled\n")
    result = kill_and_resume(log=lambda line: print(f"  {line}"))
    print(f"\nSIGKILL: {result['hits']} of {result['kills']} kills hit a live sweep; {result['runs']} runs; "
          f"lost {result['lost']}, duplicated {result['duplicated']}, identical to an uninterrupted sweep: "
          f"{'yes' if result['identical'] else 'NO'}")
    ctrl_c = interrupt_and_resume()
    print(f"Ctrl-C: exit {ctrl_c['exit']}, says how to resume: {'yes' if ctrl_c['message'] else 'NO'}, "
          f"the same command finishes it: {'yes' if ctrl_c['resumed'] else 'NO'}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
