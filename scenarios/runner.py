"""Run one scenario and store its results (``coopsim run``), or redraw figures (``coopsim figures``)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

import coopsim
from coopsim.errors import InputError
from scenarios.io import owned_files, prepare_folder, remove_stale, write_json
from scenarios.registry import Resolved, get
from scenarios.result import ScenarioResult, read_parquet, tidy, write_parquet, write_tables


@dataclass
class Finished:
    """A stored run: its folder, tidy frame, full summary and the files written."""

    out: Path
    frame: pd.DataFrame
    summary: dict[str, Any]
    figures: list[Path]
    tables: dict[str, pd.DataFrame]


def execute(resolved: Resolved, run_id: str = "run", *,
            param_columns: bool = True) -> tuple[pd.DataFrame, dict[str, Any], ScenarioResult]:
    """Run the scenario; returns the tidy frame, the full summary (with scenario, seed, config and
    seconds) and the raw result. Writes nothing. ``param_columns=False`` leaves out the ``param.*``
    columns (a sweep stores the parameters once per run, in ``runs.parquet``: a column per
    parameter on every row cost a sweep's workers a third of a second per 360,000-row run)."""
    cfg = resolved.config
    started = time.perf_counter()
    result = resolved.scenario.run(cfg, cfg.seed)
    seconds = time.perf_counter() - started
    params = cfg.model_dump(mode="json")
    frame = tidy(result.frame, run_id=run_id, seed=cfg.seed, params=params if param_columns else None)
    summary = {"scenario": resolved.scenario.name, "run_id": run_id, "seed": cfg.seed, "config": params,
               "seconds": round(seconds, 3), "coopsim_version": coopsim.__version__, **result.summary}
    return frame, summary, result


def run_and_store(resolved: Resolved, out: Path) -> Finished:
    """Run, then write ``results.parquet``, ``tables/*.csv``, ``figures/*.png`` and last
    ``summary.json`` under ``out``. Each file is written atomically and nothing is written if the
    run fails; an earlier run's ``summary.json`` is removed first and the new one written last, so a
    folder holding ``summary.json`` is always complete and consistent (an interrupted rewrite leaves
    none). ``summary.json`` lists the files the run wrote (``files``); files an earlier run there
    listed and this one does not write are removed (nothing else ever is)."""
    existed = Path(out).exists()
    out = prepare_folder(Path(out))  # a bad folder is bad input, found before any work
    try:
        frame, summary, result = execute(resolved)
    except BaseException:
        if not existed:  # leave no trace of a failed run: the (empty) folder made for it goes too
            with contextlib.suppress(OSError):
                out.rmdir()
        raise
    previous = owned_files(out)
    (out / "summary.json").unlink(missing_ok=True)
    results = write_parquet(out / "results.parquet", frame)
    tables = write_tables(out / "tables", result.tables) if result.tables else []
    figures = resolved.scenario.figures(frame, summary, out / "figures")
    summary["files"] = remove_stale(out, previous, [results, *tables, *figures])
    write_json(out / "summary.json", summary)
    return Finished(out, frame, summary, figures, result.tables)


def _version(text: object) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in str(text).split(".")[:2])
    except ValueError:
        return (0, 0)


def redraw(folder: Path) -> list[Path]:
    """Regenerate the figures of a results folder from ``results.parquet`` and ``summary.json``
    (a single run: the scenario's own figures; a sweep folder: comparison figures)."""
    import json

    folder = Path(folder)
    summary_path, results_path = folder / "summary.json", folder / "results.parquet"
    for path in (summary_path, results_path):
        if not path.is_file():
            raise InputError("RESULTS_DIR", str(folder), f"a results folder holding {path.name}")
    try:
        summary = json.loads(summary_path.read_text())
    except (ValueError, OSError) as exc:
        raise InputError("RESULTS_DIR", str(folder), f"a readable summary.json ({exc})") from None
    try:  # a sweep's figures come from its summary: its (possibly large) table is only checked
        if summary.get("kind") == "sweep":
            import pyarrow.parquet as pq

            pq.read_schema(results_path)
            frame = pd.DataFrame()
        else:
            frame, _ = read_parquet(results_path)
    except Exception as exc:  # pyarrow raises its own types for a truncated or foreign file
        raise InputError("RESULTS_DIR", str(folder), f"a readable results.parquet ({exc})") from None
    if _version(summary.get("coopsim_version", "0.0")) < (0, 2):
        raise InputError("RESULTS_DIR", str(folder), "results written by coopsim ≥ 0.2.0 (this summary.json has no "
                         "intervals over replicates): rerun the scenario or sweep to redraw its figures")
    if summary.get("kind") == "sweep":
        from scenarios.figures import sweep_figures

        paths = sweep_figures(frame, summary, folder / "figures")
    else:
        name = summary.get("scenario")
        if not isinstance(name, str):
            raise InputError("summary.json: scenario", name, "the name of the scenario that wrote it")
        paths = get(name).figures(frame, summary, folder / "figures")
    if isinstance(summary.get("files"), list):  # keep the list of owned files true
        kept = [folder / f for f in summary["files"] if Path(f).parts[:1] != ("figures",)]
        summary["files"] = remove_stale(folder, summary["files"], [*kept, *paths])
        write_json(summary_path, summary)
    return paths
