"""What a study leaves in its output folder, rebuilt from the store after every call:

- ``trials.parquet``: one row per trial — state, parameters (``param.<path>``), every objective and
  constrained metric as mean with interval (``<metric>.mean/.ci_low/.ci_high``), each constraint's
  judged value and violation, feasibility, settling, seeds, seconds, error;
- ``figures/history.png`` (one objective: every trial with its interval, infeasible ones grey, the
  best feasible so far) or ``figures/pareto.png`` (several: the first two objectives, the feasible
  Pareto front marked), and ``figures/importance.png`` (fANOVA parameter importance per objective);
- ``best.toml`` (the best feasible trial; with several objectives the Pareto-optimal trial best on
  the first) and ``best/trial-NNNN.toml`` for every Pareto-optimal feasible trial: scenario files
  that ``coopsim run`` reproduces exactly;
- ``summary.json`` last (a folder holding it is complete).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import coopsim
from learning.seeding import derive_seed
from scenarios import stats
from scenarios.config import as_toml
from scenarios.figures import OKABE_ITO, figure, interval_caption, save
from scenarios.io import atomic_write, owned_files, remove_stale, write_json
from scenarios.result import write_parquet
from scenarios.tune.spec import Study
from scenarios.tune.trial import document


def interrupted(trial: Any) -> bool:
    """A failed trial without an ``error``: it was running when its coordinator died."""
    from optuna.trial import TrialState

    return trial.state == TrialState.FAIL and "error" not in trial.user_attrs


def _complete(ostudy: Any) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in ostudy.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]


def pareto(study: Study, trials: list[Any]) -> list[Any]:
    """Feasible complete trials that no other feasible one dominates (on the objectives' means);
    with one objective, the best one (the lowest trial number among ties). A trial that repeated an
    earlier trial's settings (``same_as``) is represented by that earlier trial."""
    feasible = [t for t in trials if t.user_attrs.get("feasible") and "same_as" not in t.user_attrs]
    sign = np.array([1.0 if d == "maximize" else -1.0 for d in study.directions])
    scores = {t.number: sign * np.asarray(t.values, dtype=float) for t in feasible}
    front = [t for t in feasible
             if not any(np.all(scores[o.number] >= scores[t.number]) and np.any(scores[o.number] > scores[t.number])
                        for o in feasible)]
    if len(study.objectives) == 1 and front:
        top = max(scores[t.number][0] for t in front)
        front = [min((t for t in front if scores[t.number][0] == top), key=lambda t: t.number)]
    return sorted(front, key=lambda t: (-float(sign[0] * t.values[0]), t.number))


def _est_text(est: dict[str, Any] | None) -> str:
    return stats.Estimate(**est).text("{:.4g}") if est else "n/a"


def best_so_far(study: Study, ostudy: Any) -> str:
    """One line for the progress bar: the best feasible trial's objectives with intervals."""
    front = pareto(study, _complete(ostudy))
    if not front:
        return "no feasible trial yet"
    t = front[0]
    objs = ", ".join(f"{m} {_est_text(t.user_attrs['metrics'].get(m))}" for m, _ in study.objectives)
    more = f" (+{len(front) - 1} on the Pareto front)" if len(front) > 1 else ""
    return f"best: trial {t.number}: {objs}{more}"


def trials_frame(study: Study, ostudy: Any, front: list[Any]) -> pd.DataFrame:
    """``trials.parquet``: one row per trial (see the module docstring)."""
    on_front = {t.number for t in front}
    metrics = list(dict.fromkeys([*(m for m, _ in study.objectives), *(c.metric for c in study.constraints)]))
    rows = []
    for t in ostudy.get_trials(deepcopy=False):
        a = t.user_attrs
        state = "interrupted" if interrupted(t) else t.state.name.lower()
        row: dict[str, Any] = {"number": t.number, "state": state, "feasible": bool(a.get("feasible", False)),
                               "pareto": t.number in on_front, "settled": a.get("settled"),
                               "settling": "; ".join(a.get("settling_reasons", [])) or None,
                               "seconds": a.get("seconds"),
                               "retry_of": a.get("retry_of"), "same_as": a.get("same_as"), "error": a.get("error"),
                               "seeds": ",".join(map(str, a.get("seeds", [])))}
        row.update({f"param.{k}": v for k, v in t.params.items()})
        for m in metrics:
            est = (a.get("metrics") or {}).get(m) or {}
            row.update({f"{m}.mean": est.get("mean"), f"{m}.ci_low": est.get("ci_low"),
                        f"{m}.ci_high": est.get("ci_high")})
        for name, c in (a.get("constraints") or {}).items():
            row.update({f"constraint[{name}].judged": c.get("judged"),
                        f"constraint[{name}].violation": c.get("violation")})
        rows.append(row)
    frame = pd.DataFrame(rows)
    for col in ("settled", "settling", "retry_of", "same_as", "error"):
        if col in frame:
            frame[col] = frame[col].astype(object)
    return frame


def write_best(study: Study, front: list[Any], out: Path) -> list[Path]:
    """``best.toml`` and ``best/trial-NNNN.toml`` (see the module docstring)."""
    paths = []
    for k, t in enumerate(front):
        objs = "; ".join(f"{m} ({d}) = {_est_text(t.user_attrs['metrics'].get(m))}" for m, d in study.objectives)
        header = (f"coopsim tune: study {study.name!r}, trial {t.number} (Pareto-optimal and feasible)\n"
                  f"objectives: {objs}\n"
                  f"constraints: {', '.join(c.text() for c in study.constraints) or 'none'} "
                  f"(judged on the {study.file.constraints_on}); population settled: "
                  f"{t.user_attrs.get('settled')}\n"
                  f"parameters: {', '.join(f'{p} = {v!r}' for p, v in t.params.items())}\n"
                  f"coopsim run this file to reproduce the trial (same seeds, same numbers)\n")
        text = as_toml(document(study, t.number, dict(t.params)), header)
        targets = [out / "best" / f"trial-{t.number:04d}.toml"] if len(study.objectives) > 1 else []
        if k == 0:
            targets.append(out / "best.toml")
        for path in targets:
            paths.append(atomic_write(path, lambda tmp, text=text: tmp.write_text(text)))
    return paths


def write_outputs(study: Study, ostudy: Any, out: Path, *, recovered: list[int] = ()) -> tuple[dict[str, Any],
                                                                                               list[Path]]:
    """Rebuild every output from the store (see the module docstring); ``summary.json`` last."""
    out = Path(out)
    trials = ostudy.get_trials(deepcopy=False)
    complete = _complete(ostudy)
    front = pareto(study, complete)
    previous = owned_files(out)
    (out / "summary.json").unlink(missing_ok=True)
    frame = trials_frame(study, ostudy, front)
    written = [write_parquet(out / "trials.parquet", frame)]
    figures = tune_figures(study, complete, front, out / "figures")
    written += figures + write_best(study, front, out)
    counts = {state: int((frame["state"] == state).sum()) for state in sorted(set(frame["state"]))} if len(frame) \
        else {}
    summary = {
        "kind": "tune", "study": study.name, "coopsim_version": coopsim.__version__,
        "store": "study.db", "definition": study.definition(),
        "trials_requested": study.file.trials, "trials": counts, "recovered_now": list(recovered),
        "seeds": [derive_seed(study.file.seed, 100, k) for k in range(study.file.repeats)],
        "intervals": stats.describe(study.file.ci_level), "feasible": int(sum(bool(t.user_attrs.get("feasible"))
                                                                          for t in complete)),
        "best": [{"number": t.number, "params": dict(t.params),
                  "objectives": {m: t.user_attrs["metrics"].get(m) for m, _ in study.objectives},
                  "constraints": t.user_attrs.get("constraints", {}), "settled": t.user_attrs.get("settled"),
                  "file": "best.toml" if k == 0 and len(study.objectives) == 1 else f"best/trial-{t.number:04d}.toml"}
                 for k, t in enumerate(front)],
        "n_trials_stored": len(trials),
    }
    summary["files"] = remove_stale(out, previous, written)
    write_json(out / "summary.json", summary)
    return summary, figures


# ------------------------------------------------------------------------------------- figures
def tune_figures(study: Study, complete: list[Any], front: list[Any], folder: Path) -> list[Path]:
    """History (one objective) or Pareto front (several), and parameter importance."""
    if not complete:
        return []
    paths = [_history(study, complete, front, folder) if len(study.objectives) == 1
             else _pareto(study, complete, front, folder), _slices(study, complete, front, folder)]
    importance = _importance(study, complete, folder)
    if importance is not None:
        paths.append(importance)
    return paths


def _caption(study: Study) -> str:
    f = study.file
    judged = ("the interval's pessimistic end" if f.constraints_on == "interval" else "the mean")
    cons = ", ".join(c.text() for c in study.constraints) or "none"
    settle = "; a population that did not settle counts as infeasible" if f.unsettled == "infeasible" else ""
    return (f"{interval_caption(f.repeats, f.ci_level)} (same seeds in every trial); constraints: {cons}, "
            f"judged on {judged}{settle}; grey: infeasible")


def _point(ax: Any, x: float, est: dict[str, Any], *, color: str, filled: bool, horizontal: dict | None = None,
           marker: str = "o", size: float = 5.0) -> None:
    low, high = est.get("ci_low"), est.get("ci_high")
    yerr = None if low is None else [[est["mean"] - low], [high - est["mean"]]]
    xv, xerr = x, None
    if horizontal is not None:
        xv = horizontal["mean"]
        if horizontal.get("ci_low") is not None:
            xerr = [[xv - horizontal["ci_low"]], [horizontal["ci_high"] - xv]]
    ax.errorbar([xv], [est["mean"]], yerr=yerr, xerr=xerr, fmt=marker, color=color, markersize=size,
                mfc=color if filled else "white", elinewidth=1.0, capsize=2, alpha=1.0 if filled else 0.6)


def _history(study: Study, complete: list[Any], front: list[Any], folder: Path) -> Path:
    metric, direction = study.objectives[0]
    fig, axes = figure(width=8.0, height=4.4)
    ax = axes[0, 0]
    best_number = front[0].number if front else None
    running, xs, ys = None, [], []
    for t in sorted(complete, key=lambda t: t.number):
        est = t.user_attrs["metrics"][metric]
        feasible = bool(t.user_attrs.get("feasible"))
        color = OKABE_ITO[3] if t.number == best_number else (OKABE_ITO[0] if feasible else "grey")
        _point(ax, t.number, est, color=color, filled=feasible, size=7 if t.number == best_number else 5)
        better = running is None or (est["mean"] > running if direction == "maximize" else est["mean"] < running)
        if feasible and better:
            running = est["mean"]
        if running is not None:
            xs.append(t.number)
            ys.append(running)
    if xs:
        ax.step(xs, ys, where="post", color=OKABE_ITO[2], linewidth=1.2, label="best feasible so far")
        ax.legend(fontsize=8, loc="best")
    if best_number is not None:
        ax.annotate(f"best: trial {best_number}", (best_number, front[0].values[0]), textcoords="offset points",
                    xytext=(6, 8), fontsize=8, color=OKABE_ITO[3])
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{metric} ({direction})")
    ax.set_title(f"study {study.name!r}: {metric} per trial\n{_wrap(_caption(study))}", fontsize=8)
    return save(fig, Path(folder) / "history.png")


def _wrap(text: str, width: int = 110) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width))


def _pareto(study: Study, complete: list[Any], front: list[Any], folder: Path) -> Path:
    (mx, dx), (my, dy) = study.objectives[0], study.objectives[1]
    fig, axes = figure(width=7.5, height=5.5)
    ax = axes[0, 0]
    on_front = {t.number for t in front}
    for t in complete:
        m = t.user_attrs["metrics"]
        feasible = bool(t.user_attrs.get("feasible"))
        color = OKABE_ITO[3] if t.number in on_front else (OKABE_ITO[0] if feasible else "grey")
        _point(ax, 0.0, m[my], color=color, filled=feasible, horizontal=m[mx])
    if front:
        pts = sorted((t.user_attrs["metrics"][mx]["mean"], t.user_attrs["metrics"][my]["mean"], t.number)
                     for t in front)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], color=OKABE_ITO[3], linewidth=1.0, alpha=0.7,
                label="feasible Pareto front")
        for x, y, n in pts:
            ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7, color=OKABE_ITO[3])
        ax.legend(fontsize=8)
    ax.set_xlabel(f"{mx} ({dx})")
    ax.set_ylabel(f"{my} ({dy})")
    more = f"; objectives beyond the first two: {', '.join(m for m, _ in study.objectives[2:])}" \
        if len(study.objectives) > 2 else ""
    ax.set_title(f"study {study.name!r}: trials and Pareto front (labels: trial numbers){more}\n"
                 f"{_wrap(_caption(study), 95)}", fontsize=8)
    return save(fig, Path(folder) / "pareto.png")


def _slices(study: Study, complete: list[Any], front: list[Any], folder: Path) -> Path:
    """The first objective against each parameter (every complete trial with its interval; grey:
    infeasible; vermillion: the best / Pareto-optimal trials)."""
    metric, direction = study.objectives[0]
    on_front = {t.number for t in front}
    fig, axes = figure(1, len(study.params), width=max(5.5, 4.0 * len(study.params)), height=4.0, sharey=True)
    for k, (ax, p) in enumerate(zip(axes[0], study.params, strict=True)):
        choices = [repr(c) for c in p.choices]
        for t in complete:
            if p.path not in t.params:
                continue
            value = t.params[p.path]
            # choices: spread the trials sideways a little (by trial number) so that they do not hide each other
            x = choices.index(repr(value)) + 0.05 * ((t.number % 9) - 4) if p.kind == "choice" else value
            feasible = bool(t.user_attrs.get("feasible"))
            color = OKABE_ITO[3] if t.number in on_front else (OKABE_ITO[0] if feasible else "grey")
            _point(ax, x, t.user_attrs["metrics"][metric], color=color, filled=feasible)
        if p.kind == "choice":
            ax.set_xticks(range(len(choices)), [str(c) for c in p.choices])
            ax.set_xlim(-0.5, len(choices) - 0.5)
        elif p.log:
            ax.set_xscale("log")
        ax.set_xlabel(p.path)
        if k == 0:
            ax.set_ylabel(f"{metric} ({direction})")
    fig.suptitle(f"study {study.name!r}: {metric} against each parameter (vermillion: best feasible)\n"
                 f"{_wrap(_caption(study), 120)}", fontsize=8)
    fig.tight_layout()
    return save(fig, Path(folder) / "slices.png")


def _importance(study: Study, complete: list[Any], folder: Path) -> Path | None:
    """fANOVA importance of each parameter for each objective (Optuna, seeded), over complete trials."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    names = [p.path for p in study.params]
    if len(complete) < 2 or len({tuple(sorted(t.params.items(), key=str)) for t in complete}) < 2:
        return None
    frozen = optuna.create_study(directions=study.directions)
    frozen.add_trials(complete)
    fig, axes = figure(1, len(study.objectives), width=max(5.0, 4.2 * len(study.objectives)),
                       height=1.4 + 0.45 * len(names))
    for k, (ax, (metric, _)) in enumerate(zip(axes[0], study.objectives, strict=True)):
        try:
            imp = get_param_importances(frozen, evaluator=FanovaImportanceEvaluator(seed=study.file.seed),
                                        params=names, target=lambda t, k=k: t.values[k])
        except (RuntimeError, ValueError):
            imp = {}
        values = [imp.get(n, 0.0) for n in names]
        ax.barh(range(len(names)), values, color=OKABE_ITO[0])
        for j, v in enumerate(values):
            ax.text(min(v, 0.85) + 0.02, j, f"{v:.2f}", va="center", fontsize=8)
        ax.set_yticks(range(len(names)), names if k == 0 else [""] * len(names), fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of variance explained (fANOVA)")
        ax.set_title(metric, fontsize=9)
    note = " (one parameter: trivially 1)" if len(names) == 1 else ""
    fig.suptitle(f"study {study.name!r}: parameter importance over {len(complete)} complete trials{note}",
                 fontsize=9)
    fig.tight_layout()
    return save(fig, Path(folder) / "importance.png")
