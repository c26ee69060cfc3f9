"""Sweeps: a scenario × a grid of parameter values × repeats, resumable, local or on a Dask cluster.

A sweep file (TOML)::

    scenario = "contracts"          # a library name, or a scenario file (path relative to this file)
    seed = 0                        # root seed of the sweep
    repeats = 3                     # independent seeds per grid point
    common_seeds = false            # true: repeat r uses the same seed at every grid point
    [base]                          # fixed overrides of the scenario's fields (dotted keys or tables)
    "two_type.p1_points" = 3
    [grid]                          # each entry a list of values; the grid is their Cartesian product
    "model.k" = [1.0, 2.0]

Seeds: ``SeedSequence(seed).spawn(points)[p].spawn(repeats)[r]`` for grid point p and repeat r
(``SeedSequence(seed).spawn(repeats)[r]`` with ``common_seeds``), so a run's seed depends only on
its (point, repeat) and the root, never on scheduling. Every run id is
``p<point>-r<repeat>-<hash of the resolved configuration>``.

Resumable: each finished run is written atomically as ``runs/<run_id>.parquet`` (its summary rides
in the parquet metadata) by the coordinating process as results arrive; on restart, runs whose file
exists are skipped, and ``results.parquet`` / ``summary.json`` are rebuilt from the run files of
the current plan. An interrupted sweep therefore leaves only complete run files (at worst a stray
``.tmp`` file, removed on restart) and resumes to the same results as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

import coopsim
from coopsim.errors import InputError
from scenarios import stats
from scenarios.config import Section, flatten, flatten_sections, read_toml, validate
from scenarios.figures import sweep_figures
from scenarios.io import atomic_write, owned_files, prepare_folder, remove_stale, scenario_named, write_json
from scenarios.parallel import Started, connect, parallel_map, start_workers, warm_library, worker_setup
from scenarios.registry import get, resolve
from scenarios.result import PARAM_PREFIX, SUMMARY_META, param_value, parquet_bytes, write_parquet
from scenarios.runner import execute


class SweepFile(Section):
    """A sweep: base scenario, fixed overrides, grid and repeats."""

    scenario: str = Field(description="scenario name, or path of a scenario TOML file (required: an empty "
                                      "sweep file is an error)")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="root seed: SeedSequence(seed) spawns every run's seed")
    repeats: int = Field(1, ge=1, le=10_000, description="independent seeds per grid point")
    common_seeds: bool = Field(False, description="same seed for repeat r at every grid point (paired design)")
    ci_level: float = Field(0.95, gt=0.5, lt=1.0, description="confidence level of the intervals over repeats")
    allow_large: bool = Field(False, description=f"plan more than {10_000:,} runs (each is validated and stored "
                                                 "as its own file)")
    base: dict[str, Any] = Field(default_factory=dict, description="fixed overrides, dotted keys or nested tables")
    grid: dict[str, Any] = Field(default_factory=dict, description="dotted key → list of values (Cartesian product)")

    @field_validator("grid")
    @classmethod
    def _lists(cls, grid: dict[str, Any]) -> dict[str, Any]:
        flat = flatten(grid)
        for key, values in flat.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid.{key} must be a non-empty list of values")
        return flat

    @field_validator("base", "grid")
    @classmethod
    def _no_seed(cls, table: dict[str, Any]) -> dict[str, Any]:
        # every run's seed is spawned from the sweep's root seed: a seed set here would be overwritten
        if "seed" in flatten(table):
            raise InputError("seed", flatten(table)["seed"],
                             "not in [base] or [grid]: the sweep's top-level seed spawns every run's seed "
                             "(use repeats for more seeds)")
        return table


MAX_SWEEP_RUNS = 10_000


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep (picklable: it travels to joblib and Dask workers)."""

    run_id: str
    point_index: int
    repeat: int
    seed: int
    target: str
    point: dict[str, Any]
    assignments: dict[str, Any] = field(default_factory=dict)


def seed_of(ss: np.random.SeedSequence) -> int:
    """A 63-bit integer seed from a SeedSequence."""
    return int(ss.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def run_seeds(root: int, n_points: int, repeats: int, common: bool = False) -> list[list[int]]:
    """``seeds[p][r]`` from ``SeedSequence(root).spawn(...)`` (see the module docstring)."""
    top = np.random.SeedSequence(root)
    if common:
        row = [seed_of(s) for s in top.spawn(repeats)]
        return [list(row) for _ in range(n_points)]
    return [[seed_of(s) for s in child.spawn(repeats)] for child in top.spawn(n_points)]


def load_sweep(path: Path) -> SweepFile:
    """Read and validate a sweep file (errors name the field: exit 2)."""
    return validate(SweepFile, read_toml(Path(path)))


def plan(sweep: SweepFile, sweep_path: Path) -> list[RunSpec]:
    """Every (grid point, repeat) as a :class:`RunSpec`; each configuration is validated here, before
    anything runs or is written."""
    target = sweep.scenario
    if target.endswith(".toml"):
        candidate = Path(target)
        target = str(candidate if candidate.is_absolute() else (Path(sweep_path).parent / candidate))
    scenario_config = resolve(target).scenario.config
    base = flatten_sections(sweep.base, scenario_config)
    keys = list(sweep.grid)
    n_runs = int(np.prod([len(sweep.grid[k]) for k in keys], dtype=object)) * sweep.repeats
    if n_runs > MAX_SWEEP_RUNS and not sweep.allow_large:
        raise InputError("grid", f"{n_runs:,} runs", f"at most {MAX_SWEEP_RUNS:,} runs (grid points × repeats; each "
                         f"run is validated, run and stored as its own file): shrink the grid or repeats, or set "
                         f"allow_large = true")
    points = [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(sweep.grid[k] for k in keys))]
    seeds = run_seeds(sweep.seed, len(points), sweep.repeats, sweep.common_seeds)
    specs = []
    for p, point in enumerate(points):
        assignments = {**base, **point}
        for r in range(sweep.repeats):
            resolved = resolve(target, seed=seeds[p][r], assignments=assignments)
            digest = hashlib.sha1(json.dumps([resolved.scenario.name, resolved.config.model_dump(mode="json")],
                                             sort_keys=True).encode()).hexdigest()[:10]
            specs.append(RunSpec(f"p{p:03d}-r{r:02d}-{digest}", p, r, seeds[p][r], target, point, assignments))
    return specs


def run_task(spec: RunSpec) -> tuple[str, bytes | None, dict[str, Any]]:
    """Run one planned run (on a worker); returns the bytes of its run file — the narrow frame
    (:func:`narrow`) as parquet, the summary in its metadata — and its summary, or ``None`` and
    ``{"error": …}`` when the run failed (the sweep records it and goes on). Writes nothing: the
    coordinator stores the bytes as they are, so the encoding is shared out over the workers (in the
    coordinator it slowed every worker's results on a 2-core machine) and what travels back is the
    compressed file, not the pickled frame. Workers use one torch thread each (several workers share
    the cores) and die with the coordinator (:func:`scenarios.parallel.worker_setup`)."""
    import traceback

    worker_setup()
    try:
        resolved = resolve(spec.target, seed=spec.seed, assignments=spec.assignments)
        frame, summary, _ = execute(resolved, run_id=spec.run_id, param_columns=False)
    except Exception as exc:  # one failed run must not stop the others
        error = f"{type(exc).__name__}: {exc}"
        if exc.__cause__ is not None:  # e.g. a plug-in's own exception under the line that names it
            error += f" ← {type(exc.__cause__).__name__}: {exc.__cause__}"
        return spec.run_id, None, {"error": error, "traceback": traceback.format_exc()}
    frame.insert(2, "repeat", np.int64(spec.repeat))
    frame.insert(3, "point", np.int64(spec.point_index))
    summary.update(point=spec.point_index, repeat=spec.repeat, grid=spec.point)
    return spec.run_id, parquet_bytes(narrow(frame), summary), summary


def narrow(frame: pd.DataFrame) -> pd.DataFrame:
    """A run's rows as stored in a sweep: the ``param.*`` columns dropped (a run's parameters are
    constant: they live once in its summary and in ``runs.parquet``) and text keys categorical
    (dictionary-encoded in parquet), so a run's file and its rows in memory stay small."""
    out = frame.drop(columns=[c for c in frame.columns if c.startswith(PARAM_PREFIX)])
    for col in out.columns:
        if out[col].dtype == object or isinstance(out[col].dtype, pd.StringDtype):  # pandas ≥ 3: text is "str"
            # categories in order of appearance, as results.parquet's dictionaries always were (factorize:
            # one hashing pass; Categorical(values, categories=…) looked every value up again)
            codes, categories = pd.factorize(out[col])
            out[col] = pd.Categorical.from_codes(codes, categories=pd.Index(categories, dtype=object))
    return out


@dataclass
class SweepOutcome:
    """What a sweep did: its folder, the plan, how many runs ran now and how many were reused."""

    out: Path
    specs: list[RunSpec]
    ran: int
    reused: int
    failed: int
    summary: dict[str, Any]
    figures: list[Path]


def run_sweep(path: Path, *, out: Path | None = None, workers: int = 1, scheduler: str | None = None,
              progress: bool = True, connect_timeout: float = 20.0, combine_only: bool = False,
              started: Started | None = None) -> SweepOutcome:
    """Plan, run the missing runs (this process and ``workers − 1`` local helper processes, or the
    Dask scheduler at ``scheduler``), write each as it finishes (a failed run as
    ``runs/<id>.failed.json``, retried on the next start), then rebuild the combined results and
    figures out of core. ``combine_only`` skips running: it rebuilds from the run files already
    stored. ``started``: the workers, if the caller started them already
    (:func:`scenarios.parallel.start_workers`)."""
    if workers < 1:
        raise InputError("--workers", workers, "an integer ≥ 1")
    path = Path(path)
    try:
        sweep = load_sweep(path)
        client = connect(scheduler, connect_timeout) if scheduler and not combine_only else None
    except BaseException:
        if started is not None:
            started.close()
        raise
    if started is None:  # the workers start (each imports the library, seconds) while this process plans
        started = (start_workers(partial(warm_library, scenario_named(path)), workers=workers, client=client)
                   if not combine_only else Started())
    try:
        clock = time.perf_counter()
        specs = plan(sweep, path)
        timing = {"plan_s": time.perf_counter() - clock}
        return _run_and_combine(path, sweep, specs, out, workers, client, progress, combine_only, started, timing)
    finally:
        started.close()
        if client is not None:
            client.close()


def _run_and_combine(path: Path, sweep: SweepFile, specs: list[RunSpec], out: Path | None, workers: int,
                     client: Any, progress: bool, combine_only: bool, started: Started,
                     timing: dict[str, float]) -> SweepOutcome:
    out = prepare_folder(Path("results") / "sweeps" / path.stem if out is None else Path(out))
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    for stale in runs.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    write_json(out / "sweep.json", {"sweep": sweep.model_dump(mode="json"), "source": str(path),
                                    "runs": [vars(s) for s in specs]})
    done = {p.stem for p in runs.glob("*.parquet")}
    # dispatched repeat by repeat across the grid points: grid points often differ in cost, so the last
    # runs are a mix rather than the costliest point's (less time with one worker idle at the end),
    # and an interrupted sweep holds some repeats of every point; results keep the plan's order
    todo = [] if combine_only else sorted((s for s in specs if s.run_id not in done),
                                          key=lambda s: (s.repeat, s.point_index))
    ran = failed = 0
    clock = time.perf_counter()
    if todo:
        started.ready()
        timing["workers_ready_s"] = time.perf_counter() - clock
        stream = parallel_map(run_task, todo, workers=workers, client=client,
                              keys=[f"coopsim-{s.run_id}" for s in todo])
        with _progress(progress, len(specs), len(specs) - len(todo)) as advance:
            for run_id, payload, summary in stream:
                if payload is None:
                    write_json(runs / f"{run_id}.failed.json", summary)
                    failed += 1
                else:
                    atomic_write(runs / f"{run_id}.parquet", lambda tmp, data=payload: tmp.write_bytes(data))
                    (runs / f"{run_id}.failed.json").unlink(missing_ok=True)
                    ran += 1
                advance()
    timing["runs_s"] = time.perf_counter() - clock - timing.get("workers_ready_s", 0.0)
    previous = owned_files(out)
    (out / "summary.json").unlink(missing_ok=True)
    clock = time.perf_counter()
    summary = combine(out, specs, sweep)
    timing["combine_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    figures = sweep_figures(pd.DataFrame(), summary, out / "figures")
    timing["figures_s"] = time.perf_counter() - clock
    summary["files"] = remove_stale(out, previous, [out / "results.parquet", out / "runs.parquet", *figures])
    # where this invocation's wall time went (seconds; the runs phase counts only runs made now)
    summary["timing"] = {"workers": workers if client is None else len(client.ncores()),
                         **{k: round(v, 3) for k, v in timing.items()}}
    write_json(out / "summary.json", summary)  # last: a folder holding summary.json is complete
    return SweepOutcome(out, specs, ran, len(done & {s.run_id for s in specs}), failed, summary, figures)


class _progress:
    """A rich progress bar (or nothing) as a context manager yielding ``advance()``."""

    def __init__(self, enabled: bool, total: int, completed: int) -> None:
        self.enabled, self.total, self.completed = enabled, total, completed
        self.bar: Any = None

    def __enter__(self):
        if not self.enabled:
            return lambda: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=Console(stderr=True))
        self.bar.start()
        task = self.bar.add_task("runs", total=self.total, completed=self.completed)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def combine(out: Path, specs: list[RunSpec], sweep: SweepFile) -> dict[str, Any]:
    """Rebuild ``results.parquet`` (every finished run's rows, streamed one run at a time: memory
    stays that of one run however many there are), ``runs.parquet`` (one row per planned run:
    status, seed, grid point, parameters, error) and the sweep's summary (returned; the caller
    writes it): every run's headline numbers, and per grid point each number's mean over repeats
    with its interval (``scenarios.stats``), compared with the first grid point (paired per repeat
    with ``common_seeds``, else unpaired). Runs that failed or are missing are counted and left out."""
    name = get_name(specs)
    headline = get(name).headline if name else ()
    run_dir = out / "runs"
    finished = [s for s in specs if (run_dir / f"{s.run_id}.parquet").is_file()]
    summaries = {s.run_id: read_summary(run_dir / f"{s.run_id}.parquet") for s in finished}
    stream_results(out / "results.parquet", [run_dir / f"{s.run_id}.parquet" for s in finished])
    failures = {s.run_id: _failure(run_dir / f"{s.run_id}.failed.json") for s in specs if s.run_id not in summaries}
    write_runs_table(out / "runs.parquet", specs, summaries, failures)
    runs = [{"run_id": s.run_id, "point": s.point_index, "repeat": s.repeat, "seed": s.seed, "grid": s.point,
             "metrics": headline_numbers(summaries[s.run_id], headline)} for s in finished]
    failed = [{"run_id": k, "error": v} for k, v in failures.items() if v is not None]
    return {"kind": "sweep", "scenario": name, "coopsim_version": coopsim.__version__, "grid": sweep.grid,
            "repeats": sweep.repeats, "seed": sweep.seed, "common_seeds": sweep.common_seeds, "n_runs": len(specs),
            "n_finished": len(finished), "n_failed": len(failed), "n_missing": len(specs) - len(finished) - len(failed),
            "failed": failed, "intervals": stats.describe(sweep.ci_level), **point_estimates(runs, sweep),
            "runs": runs}


def read_summary(path: Path) -> dict[str, Any]:
    """A run file's summary from its parquet metadata, without reading its rows."""
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(SUMMARY_META)
    return json.loads(raw) if raw else {}


def _failure(path: Path) -> str | None:
    try:
        return str(json.loads(path.read_text()).get("error", "failed"))
    except (OSError, ValueError):
        return None


def stream_results(path: Path, files: list[Path]) -> Path:
    """Concatenate run files into one parquet file, one run at a time, under one schema: key
    columns first, text columns dictionary-encoded, a column missing from a run filled with nulls."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = [pq.read_schema(f) for f in files]
    names: list[str] = []
    for sch in schemas:
        names += [n for n in sch.names if n not in names]
    fields = [pa.field(n, _column_type([sch.field(n).type for sch in schemas if n in sch.names])) for n in names]
    schema = pa.schema(fields)

    def write(tmp: Path) -> None:
        # min/max statistics only where they can skip row groups (one or more per run): on the columns
        # that tell runs apart and on round; computing them on every column took a third of the write
        stats = [n for n in names if n in STATISTICS_COLUMNS]
        with pq.ParquetWriter(tmp, schema, write_statistics=stats) as writer:
            for f in files:
                writer.write_table(_conform(pq.read_table(f), schema))

    return atomic_write(Path(path), write)


#: the columns of ``results.parquet`` with min/max statistics (they tell runs apart, or order rows)
STATISTICS_COLUMNS = ("run_id", "seed", "point", "repeat", "replicate", "round")


def _column_type(types: list[Any]) -> Any:
    import pyarrow as pa

    known = [t for t in types if not pa.types.is_null(t)]
    text = [t for t in known if pa.types.is_dictionary(t) or pa.types.is_string(t) or pa.types.is_large_string(t)]
    if not known or text:
        return pa.dictionary(pa.int32(), pa.string())
    if all(t == known[0] for t in known):
        return known[0]
    if all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in known):
        return pa.float64()
    return pa.dictionary(pa.int32(), pa.string())


def _conform(table: Any, schema: Any) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for target in schema:
        if target.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, target.type))
            continue
        col = table[target.name]
        if col.type == target.type:
            pass
        elif pa.types.is_dictionary(target.type) and pa.types.is_dictionary(col.type) and (
                pa.types.is_string(col.type.value_type) or pa.types.is_large_string(col.type.value_type)):
            col = col.cast(target.type)  # text already dictionary-encoded: only the index width changes
        elif pa.types.is_dictionary(target.type):
            col = pc.dictionary_encode(col.cast(pa.string())).cast(target.type)
        else:
            col = col.cast(target.type)
        columns.append(col)
    return pa.Table.from_arrays(columns, schema=schema)


def write_runs_table(path: Path, specs: list[RunSpec], summaries: dict[str, dict[str, Any]],
                     failures: dict[str, str | None]) -> Path:
    """``runs.parquet``: one row per planned run — what is constant per run is stored here once."""
    rows = []
    for s in specs:
        summary = summaries.get(s.run_id)
        status = "finished" if summary is not None else ("failed" if failures.get(s.run_id) else "missing")
        row: dict[str, Any] = {"run_id": s.run_id, "point": s.point_index, "repeat": s.repeat, "seed": s.seed,
                               "status": status, "seconds": (summary or {}).get("seconds"),
                               "error": failures.get(s.run_id)}
        row.update({f"grid.{k}": param_value(v) for k, v in s.point.items()})
        row.update({PARAM_PREFIX + k: param_value(v) for k, v in flatten((summary or {}).get("config", {})).items()})
        rows.append(row)
    return write_parquet(path, pd.DataFrame(rows))


def point_estimates(runs: list[dict[str, Any]], sweep: SweepFile) -> dict[str, Any]:
    """``points``: each grid point's metrics as estimates over its repeats; ``comparisons``: each
    point against point 0, per metric (paired per repeat when seeds are common)."""
    level = sweep.ci_level
    metrics = sorted({k for r in runs for k in r["metrics"]})
    by_point: dict[int, dict[str, list[float]]] = {}
    grids: dict[int, dict[str, Any]] = {}
    for r in sorted(runs, key=lambda r: (r["point"], r["repeat"])):
        grids[r["point"]] = r["grid"]
        for m in metrics:
            by_point.setdefault(r["point"], {}).setdefault(m, []).append(r["metrics"].get(m, np.nan))
    points = [{"point": p, "grid": grids[p],
               "metrics": {m: stats.estimate(v, level=level).as_dict() for m, v in values.items()}}
              for p, values in by_point.items()]
    compare = stats.paired if sweep.common_seeds else stats.unpaired
    comparisons = [{"point": p, "against_point": 0, "design": "paired" if sweep.common_seeds else "unpaired",
                    "metrics": {m: compare(values[m], by_point[0][m], level=level).as_dict() for m in metrics}}
                   for p, values in by_point.items() if p != 0]
    return {"points": points, "comparisons": comparisons}


def get_name(specs: list[RunSpec]) -> str | None:
    if not specs:
        return None
    return resolve(specs[0].target, seed=specs[0].seed, assignments=specs[0].assignments).scenario.name


def headline_numbers(summary: dict[str, Any], keys: tuple[str, ...] = ()) -> dict[str, float]:
    """Numbers to compare across runs, by dotted path: those matching one of ``keys`` (``fnmatch``
    patterns such as ``free_rider_profit.*``) if given, else every top-level number except
    bookkeeping (seed, seconds). An aggregated number (an estimate object) counts as its mean; an
    undefined one (mean null) as NaN."""
    from fnmatch import fnmatchcase

    flat = numbers({k: v for k, v in summary.items() if k not in ("config", "grid", "intervals")})
    if keys:
        return {k: v for k, v in flat.items() if any(fnmatchcase(k, pattern) for pattern in keys)}
    skip = {"seed", "point", "repeat", "seconds"}
    config = summary.get("config") or {}
    return {k: v for k, v in flat.items()  # numbers echoed from the configuration are not results
            if "." not in k and k not in skip and k not in config}


def numbers(data: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Every number in a nested summary by dotted path, estimates collapsed to their means."""
    out: dict[str, float] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if stats.is_estimate(value):
            out[path] = float("nan") if value["mean"] is None else float(value["mean"])
        elif isinstance(value, dict):
            out.update(numbers(value, f"{path}."))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[path] = float(value)
    return out
