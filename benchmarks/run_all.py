"""Run every benchmark once and write what it measured: ``benchmarks/results.md`` (one table, the
command, the date and the machine) and the README's performance table (between its
``<!-- performance:begin -->`` and ``<!-- performance:end -->`` markers).

    python benchmarks/run_all.py                 # every script, about 10 minutes on 2 cores
    python benchmarks/run_all.py --quick         # smaller variants (a smoke test; not for the README)
    python benchmarks/run_all.py bench_sim bench_contracts   # some scripts; the others' rows are kept

Each script exposes ``goals(quick) -> list[Goal]`` (``benchmarks/goals.py``). One run of each: the
numbers are single measurements, not estimates over repeats. A script that fails is reported as
failed in the table, and the others still run.
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import re
import sys
import time
import traceback
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from goals import Goal  # noqa: E402 (the benchmarks folder is put on the path first)

#: the scripts the table is made of, in its order (long studies with their own result files, such
#: as bench_sweep_memory.py and bench_cgsv_approximation.py, are run on their own)
SCRIPTS = ("bench_sim", "bench_credit", "bench_contracts", "bench_sweep_scale", "bench_device",
           "bench_learning", "bench_economics", "bench_tune", "bench_dashboard")
RESULTS = HERE / "results.md"
STORE = HERE / "results.json"
BEGIN, END = "<!-- performance:begin -->", "<!-- performance:end -->"


def machine() -> str:
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"torch {torch.__version__}, {cuda}")


def run(names: list[str], quick: bool) -> dict[str, list[dict] | str]:
    out: dict[str, list[dict] | str] = {}
    for name in names:
        started = time.perf_counter()
        print(f"== {name}", flush=True)
        try:
            goals = importlib.import_module(name).goals(quick)
            out[name] = [{**g.__dict__, "date": date.today().isoformat()} for g in goals]
            for g in goals:
                print("  " + g.line(), flush=True)
        except Exception as exc:  # one failing script must not lose the others' measurements
            traceback.print_exc()
            out[name] = f"failed: {type(exc).__name__}: {exc}"
        print(f"   ({time.perf_counter() - started:.0f} s)", flush=True)
    return out


def table(results: dict[str, list[dict] | str]) -> str:
    lines = ["| script | what | measured | goal | met? |", "|---|---|---|---|---|"]
    for name in SCRIPTS:
        entry = results.get(name)
        if entry is None:
            continue
        if isinstance(entry, str):
            lines.append(f"| `{name}.py` | {entry} | | | |")
            continue
        for k, raw in enumerate(entry):
            g = Goal(**{k: v for k, v in raw.items() if k != "date"})
            note = f" ({g.note})" if g.note else ""
            verdict = {True: "met", False: "**not met**", None: ""}[g.met]
            lines.append(f"| {f'`{name}.py`' if k == 0 else ''} | {g.what}{note} | {g.measured_text()} | "
                         f"{g.goal_text()} | {verdict} |")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    names = [a.removesuffix(".py") for a in argv if not a.startswith("--")] or list(SCRIPTS)
    unknown = sorted(set(names) - set(SCRIPTS))
    if unknown:
        sys.exit(f"error: unknown scripts {unknown}; choose from {list(SCRIPTS)}")
    previous = json.loads(STORE.read_text())["results"] if STORE.exists() and not quick else {}
    results = {**previous, **run(names, quick)}
    command = "python benchmarks/run_all.py" + (" --quick" if quick else "")
    body = table(results)
    dates = sorted({raw["date"] for entry in results.values() if not isinstance(entry, str) for raw in entry
                    if "date" in raw} | {date.today().isoformat()})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]} (scripts rerun one by one)"
    header = (f"Measured by `{command}` on {when} ({machine()}); one run of each script, so single "
              f"measurements, not estimates over repeats.")
    if quick:
        print("\n" + header + "\n\n" + body)
        return
    STORE.write_text(json.dumps({"date": date.today().isoformat(), "machine": machine(), "results": results},
                                indent=1, default=str) + "\n")
    RESULTS.write_text("# Benchmark results\n\n" + header + "\n\n" + body + "\n")
    readme = ROOT / "README.md"
    text = readme.read_text()
    if BEGIN in text and END in text:
        pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
        readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{header}\n\n{body}\n{END}", text))
    print(f"\nwrote {RESULTS.relative_to(ROOT)} and the README's performance table")


if __name__ == "__main__":
    main(sys.argv[1:])
