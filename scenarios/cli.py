"""The ``coopsim`` command line (typer).

Commands: ``run`` (one scenario), ``sweep`` (grid × repeats, resumable, joblib or Dask), ``figures``
(redraw from stored results), ``list`` (the scenario library, mechanisms and strategies, plug-ins
included), ``check`` (a mechanism's conformance) and ``demo`` (substrates side by side).

Exit codes: 0 ok, 2 bad input (the message names the field, the value and what is allowed),
1 a plug-in failed (its traceback, under a line naming it and the round), a conformance item failed,
or an internal error.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from coopsim.errors import InputError, PluginError
from scenarios.io import scenario_named

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="coopsim: reward mechanisms for AI cooperatives, on real training.")
console = Console()
err_console = Console(stderr=True)
MAX_SEED = 2**63 - 1  # seeds are 63-bit integers (numpy SeedSequence entropy, parquet int64 columns)


@app.callback()
def _root(
    threads: Annotated[int, typer.Option(min=1, envvar="COOPSIM_THREADS",
                                         help="torch CPU threads (1 is fastest for coopsim's small models, "
                                              "and robust when other processes share the cores)")] = 1,
) -> None:
    """coopsim: reward mechanisms for AI cooperatives, on real training."""
    _THREADS[0] = threads  # set by each command (_exit_codes)


_THREADS = [1]


def _use_threads() -> None:
    """torch's CPU threads as ``--threads`` says: now, or when torch is first imported (a surrogate
    command never imports it)."""
    from coopsim.threads import torch_threads

    torch_threads(_THREADS[0])


@contextmanager
def _exit_codes(*, threads: bool = True) -> Iterator[None]:
    """Bad input → message naming the field, exit 2; any other failure → traceback, exit 1. Sets
    torch's threads first, unless ``threads=False`` (the command does, when it is ready to)."""
    try:
        if threads:
            _use_threads()
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        err_console.print("interrupted (Ctrl-C): nothing half-written is left; a sweep keeps every finished run, "
                          "so rerunning the same command resumes it; a single run starts again", highlight=False)
        raise typer.Exit(130) from None
    except (InputError, ValidationError) as exc:
        _print_error(exc)
        raise typer.Exit(2) from None
    except PluginError as exc:
        _print_plugin_error(exc)
        raise typer.Exit(1) from None
    except Exception:
        err_console.print("[red]internal error[/red] (please report):", highlight=False)
        err_console.print(traceback.format_exc(), highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(1) from None


def _print_error(exc: Exception) -> None:
    """``error: <message>``; the message is printed as is (square brackets in values are not markup) and
    never re-wrapped, so a long path or value in it stays whole."""
    from rich.markup import escape

    err_console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)


def _print_plugin_error(exc: PluginError) -> None:
    """A plug-in failed: one line naming it and where, then its own traceback, once."""
    from rich.markup import escape

    err_console.print(f"[red]error:[/red] {escape(str(exc))}; its traceback:", highlight=False, soft_wrap=True)
    cause = exc.__cause__ or exc
    err_console.print("".join(traceback.format_exception(cause)).rstrip(), highlight=False, markup=False,
                      soft_wrap=True)  # a traceback is never re-wrapped: its paths and lines stay whole


SetOption = Annotated[list[str] | None, typer.Option("--set", help="override a field: key=value (TOML literal), "
                                                     "dotted key path; repeatable")]


@app.command("list")
def list_scenarios() -> None:
    """Show the scenario library, and the mechanisms and strategies (built-in and installed plug-ins)
    with their settings."""
    with _exit_codes():
        from scenarios.plugins import mechanism_rows, strategy_rows
        from scenarios.registry import registry

        table = Table(title="coopsim scenario library")
        table.add_column("scenario")
        table.add_column("what it shows")
        for name, scen in sorted(registry().items()):
            table.add_row(name, scen.description)
        console.print(table)
        console.print("run one: coopsim run NAME [--set key=value ...] [--seed N] [--out DIR]")
        from rich.markup import escape

        for title, rows, hint in (
                ("mechanisms (mechanism = { kind = NAME, setting = value ... })", mechanism_rows(),
                 "your own: kind = \"my_pkg.mechs:MyMechanism\" (see README, Bring your own mechanism); "
                 "coopsim check NAME tests one"),
                ("strategies (population.strategy = NAME)", strategy_rows(),
                 "your own: strategy = \"my_pkg.strategies:MyStrategy\", a subclass of sim.strategies.Strategy")):
            table = Table(title=escape(title))
            for col in ("name", "source", "what it does", "settings (default)"):
                table.add_column(col)
            for row in rows:
                table.add_row(*(escape(str(v)) for v in row))
            console.print(table)
            console.print(hint, highlight=False, markup=False)


@app.command()
def check(
    kind: Annotated[str, typer.Argument(help="a mechanism: built-in name, installed plug-in name, or module:Class")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="one of its settings: name=value (TOML "
                                                   "literal); repeatable")] = None,
    seed: Annotated[int, typer.Option(help="root seed of the check's cooperatives", min=0, max=MAX_SEED)] = 0,
    rounds: Annotated[int, typer.Option(help="rounds per check run", min=2, max=200)] = 8,
) -> None:
    """Conformance check of a mechanism: runs it in small seeded surrogate cooperatives and reports,
    item by item, whether its settings validate, it runs, pays finite amounts within its budget,
    is deterministic under a seed and leaves its inputs unchanged. Exit 1 when an item fails."""
    with _exit_codes():
        from scenarios.config import parse_override
        from scenarios.conformance import check_mechanism
        from sim.mechanisms import settings_for

        settings = {}
        for item in set_ or []:
            path, value = parse_override(item)
            settings[".".join(path)] = value
        settings_for({**settings, "kind": kind}, field="mechanism")  # a bad name or setting: exit 2
        report = check_mechanism(kind, settings, seed=seed, rounds=rounds)
        for item in report.items:
            mark = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "[dim]skip[/dim]"}[item.passed]
            from rich.markup import escape

            console.print(f"{mark}  {item.name}" + (f": {escape(item.detail)}" if item.detail else ""),
                          highlight=False)
        if not report.ok:
            console.print(f"{kind}: {len(report.failures())} of {len(report.items)} items did not pass",
                          highlight=False, markup=False)
            raise typer.Exit(1)
        console.print(f"{kind}: all {len(report.items)} items pass", highlight=False, markup=False)


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="a scenario name (coopsim list) or a path to a scenario TOML file")],
    set_: SetOption = None,
    seed: Annotated[int | None, typer.Option(help="root seed (overrides the file's seed)", min=0,
                                             max=MAX_SEED)] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default results/<scenario>/)")] = None,
    ci_level: Annotated[float | None, typer.Option(help="confidence level of every interval over replicates "
                                                      "(default 0.95; the same as --set ci_level=…)")] = None,
) -> None:
    """Run one scenario; write results.parquet, summary.json and figures/*.png under the output folder."""
    with _exit_codes():
        from scenarios.registry import resolve
        from scenarios.runner import run_and_store

        overrides = list(set_ or []) + ([f"ci_level={ci_level!r}"] if ci_level is not None else [])
        resolved = resolve(scenario, overrides, seed)
        folder = Path("results") / resolved.label if out is None else out
        console.print(f"running [bold]{resolved.scenario.name}[/bold] (seed {resolved.config.seed})")
        done = run_and_store(resolved, folder)
        for name, table in done.tables.items():
            _print_table(name, table)
        _print_intervals(done.summary)
        for line in done.summary.get("settling_warnings", []):
            console.print(f"warning: {line}", style="yellow", highlight=False, markup=False)
        console.print(f"finished in {done.summary['seconds']:.1f} s")
        console.print(f"results: {(done.out / 'results.parquet').resolve()}")
        console.print(f"summary: {(done.out / 'summary.json').resolve()}")
        console.print(f"figures: {(done.out / 'figures').resolve()} ({len(done.figures)} PNG)")


def _print_intervals(summary: dict) -> None:
    """How to read the tables' ``mean [low, high]`` cells (once, under the tables)."""
    info = summary.get("intervals")
    if not isinstance(info, dict):
        return
    n = summary.get("replicates")
    over = f" over {n} replicates" if n else ""
    console.print(f"mean [low, high]: {100 * info['level']:g}% confidence interval{over} ({info['method']}); "
                  f"verdicts: {info['verdict']}", highlight=False, markup=False)


def _print_table(name: str, frame) -> None:
    from rich.markup import escape

    table = Table(title=escape(name))
    for col in frame.columns:
        table.add_column(escape(str(col)), justify="right" if frame[col].dtype.kind in "fi" else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*[escape(_cell(v)) for v in row])
    console.print(table)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "0" if abs(value) < 1e-9 else f"{value:.4g}"
    return str(value)


@app.command()
def sweep(
    sweep_file: Annotated[Path, typer.Argument(help="sweep TOML: scenario, seed, repeats, base and grid tables")],
    workers: Annotated[int, typer.Option(help="runs at once: this process and workers − 1 helper processes "
                                              "(joblib's loky)", min=1)] = 1,
    scheduler: Annotated[str | None, typer.Option(help="address of a Dask scheduler, e.g. tcp://host:8786")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default results/sweeps/<file stem>/)")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
    connect_timeout: Annotated[float, typer.Option(help="seconds to wait for the Dask scheduler", min=0.1)] = 20.0,
    combine_only: Annotated[bool, typer.Option(help="run nothing: rebuild results, summary and figures from the "
                                                    "run files already stored")] = False,
) -> None:
    """Run a scenario over a grid × repeats; resumable (finished runs are skipped)."""
    started = time.perf_counter()
    with _exit_codes(threads=False), _helpers_first(workers, scheduler is None and not combine_only,
                                                    scenario_named(sweep_file)) as helpers:
        from scenarios.sweep import run_sweep

        done = run_sweep(sweep_file, out=out, workers=workers, scheduler=scheduler, progress=progress,
                         connect_timeout=connect_timeout, combine_only=combine_only, started=helpers)
        s = done.summary
        console.print(f"{len(done.specs)} runs: {done.ran} ran now, {done.reused} reused from earlier, "
                      f"{s['n_failed']} failed, {s['n_missing']} missing ({time.perf_counter() - started:.1f} s)")
        for failure in s["failed"][:5]:
            err_console.print(f"failed: {failure['run_id']}: {failure['error']}", highlight=False, markup=False)
        if s["n_failed"] or s["n_missing"]:
            console.print("rerun the same command to retry the failed and missing runs")
        console.print(f"runs:    {(done.out / 'runs').resolve()} (table: runs.parquet)")
        console.print(f"results: {(done.out / 'results.parquet').resolve()}")
        console.print(f"summary: {(done.out / 'summary.json').resolve()}")
        console.print(f"figures: {(done.out / 'figures').resolve()} ({len(done.figures)} PNG)")


@contextmanager
def _helpers_first(workers: int, local: bool, scenario: str | None = None) -> Iterator[Any]:
    """Start a local map's ``workers − 1`` helper processes (``local`` and more than one worker) before
    this process imports the library: they import it on the other cores meanwhile (seconds each);
    ``scenario``: only that library scenario's modules (see :func:`scenarios.parallel.warm_library`).
    Yields their :class:`scenarios.parallel.Started` (None when none started); on failure they are
    stopped rather than waited for."""
    helpers = None
    if local and workers > 1:
        from functools import partial

        from scenarios.parallel import start_workers, warm_library

        helpers = start_workers(partial(warm_library, scenario), workers=workers)
    try:
        _use_threads()
        yield helpers
    except BaseException:
        if helpers is not None:
            helpers.close()
        raise


@app.command()
def tune(
    study_file: Annotated[Path, typer.Argument(help="study TOML: [cooperative], [space], [objectives], "
                                                    "[constraints], trials, repeats, seed")],
    workers: Annotated[int, typer.Option(help="trials run at once: this process and workers − 1 helper processes "
                                              "(joblib's loky), or the batch "
                                              "size on a Dask cluster", min=1)] = 1,
    scheduler: Annotated[str | None, typer.Option(help="address of a Dask scheduler, e.g. tcp://host:8786")] = None,
    out: Annotated[Path | None, typer.Option(help="output folder (default results/tune/<file stem>/)")] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar with the best trial so far")] = True,
    connect_timeout: Annotated[float, typer.Option(help="seconds to wait for the Dask scheduler", min=0.1)] = 20.0,
) -> None:
    """Search mechanism settings (Optuna) for the study's objectives under its constraints; resumable
    (the study lives in OUT/study.db: rerun the same command after an interruption)."""
    started = time.perf_counter()
    # "cooperative": the scenario every trial runs (scenarios.tune.trial.SCENARIO, not imported here: heavy)
    with _exit_codes(threads=False), _helpers_first(workers, scheduler is None, "cooperative"):
        from scenarios.tune import run_tune

        done = run_tune(study_file, out=out, workers=workers, scheduler=scheduler, progress=progress,
                        connect_timeout=connect_timeout)
        s = done.summary
        counts = ", ".join(f"{v} {k}" for k, v in s["trials"].items())
        recovered = (f"; {len(done.recovered)} interrupted trial(s) marked failed and queued again"
                     if done.recovered else "")
        console.print(f"study {done.study.name!r}: {done.ran} trial(s) ran now ({counts}; "
                      f"{s['feasible']} feasible){recovered} ({time.perf_counter() - started:.1f} s)",
                      highlight=False, markup=False)
        _print_best(done)
        _print_intervals(s)
        console.print(f"trials:  {(done.out / 'trials.parquet').resolve()}")
        console.print(f"store:   {(done.out / 'study.db').resolve()} (optuna-dashboard sqlite:///"
                      f"{(done.out / 'study.db').resolve()})", highlight=False)
        console.print(f"summary: {(done.out / 'summary.json').resolve()}")
        console.print(f"figures: {(done.out / 'figures').resolve()} ({len(done.figures)} PNG)")
        if s["best"]:
            console.print(f"best:    {(done.out / s['best'][0]['file']).resolve()} (coopsim run it to reproduce)")


def _print_best(done) -> None:
    """The best (or Pareto-optimal) feasible trials, one column each: parameters, objectives with
    their intervals, each constraint's judged value."""
    import pandas as pd

    from scenarios import stats

    s = done.summary
    if not s["best"]:
        console.print("no feasible trial: none met every constraint (see trials.parquet and the figures)",
                      style="yellow")
        return
    shown = s["best"][:4]
    rows: dict[str, list[str]] = {}
    for b in shown:
        for k, v in b["params"].items():
            rows.setdefault(k, []).append(f"{v:.6g}" if isinstance(v, float) else str(v))
        for m, e in b["objectives"].items():
            rows.setdefault(m, []).append(stats.Estimate(**e).text("{:.4g}"))
        for name, c in b["constraints"].items():
            rows.setdefault(name, []).append(f"{_cell(c['judged'])} ({'met' if c['met'] else 'missed'})")
    frame = pd.DataFrame({"": list(rows), **{f"trial {b['number']}": [rows[k][j] for k in rows]
                                            for j, b in enumerate(shown)}})
    title = "best trial" if len(done.study.objectives) == 1 else (
        f"Pareto-optimal feasible trials ({len(s['best'])}; first {len(shown)} shown)")
    _print_table(title, frame)


@app.command()
def dashboard(
    scenario: Annotated[str | None, typer.Argument(help="start from a sim-based scenario (name or TOML file): its "
                                                        "population and first two mechanisms")] = None,
    port: Annotated[int, typer.Option(help="port to serve on", min=1, max=65535)] = 8765,
    host: Annotated[str, typer.Option(help="address to serve on")] = "127.0.0.1",
    out: Annotated[Path, typer.Option(help="folder for exported scenario files")] = Path("results/dashboard"),
    fetch_assets: Annotated[bool, typer.Option(help="fetch the page's assets from the npm registry when missing "
                                                    "(the page then needs no CDN)")] = True,
) -> None:
    """Watch and steer two mechanisms on one population live in the browser (Mesa SolaraViz); export
    what you see as a scenario file. Needs the dashboard extra: pip install -e '.[dashboard]'."""
    with _exit_codes():
        from scenarios.dashboard.server import serve

        rc = serve(scenario, host=host, port=port, out=out, fetch_assets=fetch_assets,
                   announce=lambda line: console.print(line, highlight=False, markup=False))
        if rc:
            raise typer.Exit(rc)


@app.command()
def figures(
    results_dir: Annotated[Path, typer.Argument(help="a results folder (run or sweep), or a folder of them")]
    = Path("results"),
) -> None:
    """Regenerate figures from results.parquet and summary.json (of one folder, or of every folder below
    it that holds both, sweeps included)."""
    with _exit_codes():
        from scenarios.runner import redraw

        folders = [results_dir] if (results_dir / "summary.json").is_file() else sorted(
            p.parent for p in results_dir.rglob("summary.json") if (p.parent / "results.parquet").is_file())
        if not folders:
            raise InputError("RESULTS_DIR", str(results_dir),
                             "a folder with results.parquet and summary.json, or a folder of such folders")
        for folder in folders:
            paths = redraw(folder)
            console.print(f"figures: {(folder / 'figures').resolve()} ({len(paths)} PNG)")


@app.command()
def demo(
    epochs: Annotated[int, typer.Option(help="passes over the pooled training data", min=1)] = 20,
    members: Annotated[int, typer.Option(help="number of members", min=1)] = 10,
    partition: Annotated[str, typer.Option(help="uni, pow, cla or dirichlet")] = "cla",
    dataset: Annotated[str, typer.Option(help="digits, mnist5k or synthetic")] = "digits",
    model: Annotated[str, typer.Option(help="logreg, mlp or cnn")] = "mlp",
    local_epochs: Annotated[int, typer.Option(help="FedAvg local epochs per round", min=1)] = 2,
    seed: Annotated[int, typer.Option(help="root seed", min=0, max=MAX_SEED)] = 0,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("results/demo"),
) -> None:
    """Train TL, centralised, FedAvg and standalone side by side (equal samples processed) and print
    their test accuracy."""
    with _exit_codes():
        from learning.compare import compare_substrates
        from scenarios.figures import substrate_curves
        from scenarios.io import prepare_folder, write_json

        out = prepare_folder(out)
        started = time.perf_counter()
        result = compare_substrates(dataset=dataset, partition_scheme=partition, n_members=members, model=model,
                                    epochs=epochs, local_epochs=local_epochs, seed=seed)
        final = result.final()
        table = Table(title=f"{dataset} · {partition} · {members} members · {model} · {epochs} epochs-equivalent")
        table.add_column("substrate")
        table.add_column("test accuracy", justify="right")
        table.add_column("vs centralised", justify="right")
        for name, acc in final.items():
            table.add_row(name, f"{100 * acc:.2f}%", f"{100 * (acc - final['centralised']):+.2f} pts")
        console.print(table)
        summary = {"final_test_accuracy": final, "standalone_members": result.standalone_members,
                   "curves": result.curves, "settings": result.settings,
                   "seconds": round(time.perf_counter() - started, 2)}
        write_json(out / "summary.json", summary)
        fig = substrate_curves(result.epochs, result.curves, f"{dataset}, {partition}, {members} members",
                               out / "figures" / "substrates.png")
        console.print(f"figures: {fig.parent.resolve()}")
        console.print(f"summary: {(out / 'summary.json').resolve()}")


def main() -> None:
    """Console entry point. Usage errors exit with 2 (typer); bad values found while running
    (:class:`InputError`, pydantic ``ValidationError``) also exit with 2 and name the field."""
    try:
        app()
    except (InputError, ValidationError) as exc:
        _print_error(exc)
        sys.exit(2)
    finally:
        # the command is over and its files are written and closed; the interpreter's last garbage
        # collections would only walk the library's objects (torch, pandas, matplotlib, mesa: about
        # 0.5–1 s here) before the OS frees them anyway; frozen objects are left to the OS
        gc.freeze()


if __name__ == "__main__":
    main()
