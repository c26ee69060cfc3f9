"""One figure style for the whole project: colour-blind-safe palette (Okabe–Ito), labelled axes
with units, figures saved atomically as PNG."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from scenarios import stats
from scenarios.io import atomic_write

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 110,
    "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.frameon": False,
    "font.size": 10,
}
# scenarios/ is the only layer that plots; every figure it draws uses this style
matplotlib.rcParams.update(STYLE)


def save(fig: plt.Figure, path: Path) -> Path:
    """Save ``fig`` as PNG atomically and close it."""
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"))
    plt.close(fig)
    return Path(path)


def substrate_curves(epochs: list[float], curves: dict[str, list[float]], title: str, path: Path) -> Path:
    """Test accuracy against samples processed (in epochs of the pooled data), one line per substrate."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        markers = iter("os^Dv")
        for k, (name, values) in enumerate(curves.items()):
            y = np.asarray(values, dtype=float)
            ok = ~np.isnan(y)
            x = np.asarray(epochs, dtype=float)[ok]
            style = ("-" if k != 1 else "--") if ok.sum() > 1 else ""
            # the first curve is drawn wide underneath, so an identical second curve stays visible
            ax.plot(x, 100 * y[ok], style, marker=next(markers), markersize=4, label=name,
                    linewidth=4.5 if k == 0 else 1.5, alpha=0.45 if k == 0 else 1.0)
        ax.set_xlabel("samples processed (epochs of the pooled training data)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(title)
        ax.legend()
        return save(fig, path)


def figure(nrows: int = 1, ncols: int = 1, *, width: float | None = None, height: float | None = None,
           **kwargs) -> tuple[plt.Figure, np.ndarray]:
    """A figure in the project style; ``axes`` is always a 2-d array."""
    w = width if width is not None else 6.4 * (1 if ncols == 1 else 0.62 * ncols)
    h = height if height is not None else 4.0 * (1 if nrows == 1 else 0.75 * nrows)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, h), squeeze=False, **kwargs)
    return fig, axes


def grouped_bars(ax: plt.Axes, groups: list[str], series: dict[str, list[float]], *,
                 errors: dict[str, list[float]] | None = None) -> None:
    """Bars of several ``series`` side by side within each group (x axis: ``groups``)."""
    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(groups))
    for k, (name, values) in enumerate(series.items()):
        err = None if errors is None else errors.get(name)
        ax.bar(x + (k - (n - 1) / 2) * width, values, width, label=name, color=OKABE_ITO[k % len(OKABE_ITO)],
               yerr=err, capsize=2 if err is not None else 0)
    ax.set_xticks(x, groups)


def metric_vs_parameter(table, metric: str, grid_cols: list[str], path: Path, *, title: str = "",
                        level: float = 0.95) -> Path:
    """Sweep comparison: ``metric`` against the first grid column (mean over repeats with its
    interval as a band, :func:`scenarios.stats.estimate`), one line per combination of the other
    grid columns; against the repeat index when there is no grid."""
    from scenarios.stats import estimate

    fig, axes = figure()
    ax = axes[0, 0]
    data = table.dropna(subset=[metric]) if metric in table else table.iloc[0:0]
    ns: list[int] = []
    if not grid_cols:
        ax.plot(data["repeat"], data[metric], "o")
        ax.set_xlabel("repeat (independent seed)")
        ax.set_ylabel(metric)
    else:
        x, others = grid_cols[0], grid_cols[1:]
        groups = data.groupby(others, dropna=False) if others else [("", data)]
        categorical = not all(isinstance(v, int | float) and not isinstance(v, bool) for v in data[x])
        order = list(dict.fromkeys(data[x].tolist()))
        for k, (key, part) in enumerate(groups):
            ests = {v: estimate(part.loc[part[x] == v, metric].tolist(), level=level) for v in order
                    if (part[x] == v).any()}
            ns += [e.n for e in ests.values()]
            xs = [order.index(v) for v in ests] if categorical else list(ests)
            # long values (tables) wrap over lines below the axes rather than being cut
            label = textwrap.fill(", ".join(f"{_short(c[5:])}={_short(str(v), 160)}"
                                            for c, v in zip(others, key if isinstance(key, tuple) else (key,),
                                                            strict=False)), 80) if others else None
            estimate_band(ax, xs, list(ests.values()), color=OKABE_ITO[k % len(OKABE_ITO)], label=label)
        if categorical:
            ax.set_xticks(range(len(order)), [str(v) for v in order])
        ax.set_xlabel(x[5:])
        if others:  # below the axes: grid values can be long (tables as JSON)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=1)
        ax.set_ylabel(metric)
    caption = interval_caption(ns or [len(data)], level, "repeats")
    ax.set_title(f"{title}\n{caption}" if title else caption, fontsize=9)
    return save(fig, path)


def _short(text: str, width: int = 0) -> str:
    """A dotted field as its last part; a value cut to ``width`` characters (0: whole)."""
    if not width:
        return text.rsplit(".", 1)[-1]
    text = text.replace('"', "")
    return text if len(text) <= width else text[: width - 1] + "…"


# ------------------------------------------------------------------------------ intervals in figures
def _est(value: Any) -> dict[str, Any] | None:
    """An estimate as a dict (from :class:`scenarios.stats.Estimate` or ``summary.json``), or None."""
    if value is None:
        return None
    return value.as_dict() if hasattr(value, "as_dict") else dict(value)


def interval_caption(n: int | list[int], level: float, what: str = "replicates") -> str:
    """``mean ± 95% CI, n = 5 replicates`` (or a range of n when they differ)."""
    ns = sorted(set(n if isinstance(n, list) else [n]))
    ns_text = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
    if ns and ns[-1] <= 1:
        return f"n = {ns_text} {what}: no interval (one replicate)"
    return f"mean and {100 * level:.0f}% CI, n = {ns_text} {what}"


def estimate_bars(ax: plt.Axes, labels: list[str], estimates: list[Any], *, colors: list[str] | None = None,
                  scale: float = 1.0, offset: float = 0.0, width: float = 0.8, label: str | None = None) -> None:
    """Bars of the means with their intervals as error bars. An undefined value (mean None) is drawn
    as a dashed outline labelled ``n/a: <reason>``; a mean without an interval (n = 1) has no error
    bar and is hatched."""
    colors = colors or [OKABE_ITO[j % len(OKABE_ITO)] for j in range(len(labels))]
    reasons: list[str] = []
    for j, raw in enumerate(estimates):
        est = _est(raw) or {"mean": None, "reason": "not measured"}
        x = j + offset
        if est.get("mean") is None:
            ax.annotate("n/a", (x, 0), ha="center", va="bottom", fontsize=7, color="dimgrey", xytext=(0, 2),
                        textcoords="offset points")
            reasons.append(str(est.get("reason") or "undefined"))
            continue
        mean = scale * est["mean"]
        has_ci = est.get("ci_low") is not None and est.get("ci_high") is not None
        err = None if not has_ci else [[mean - scale * est["ci_low"]], [scale * est["ci_high"] - mean]]
        ax.bar(x, mean, width, color=colors[j % len(colors)], yerr=err, capsize=3 if has_ci else 0,
               hatch=None if has_ci else "//", edgecolor="black" if not has_ci else None,
               linewidth=0.5, label=label if j == 0 else None, error_kw={"linewidth": 1.0})
    ax.set_xticks(range(len(labels)), labels)
    if reasons:  # say why a value is missing, under the axis
        note = "n/a: " + "; ".join(dict.fromkeys(reasons))
        ax.set_xlabel(f"{ax.get_xlabel()}\n{note}".strip(), fontsize=7, color="dimgrey")


def estimate_band(ax: plt.Axes, x: list[float], estimates: list[Any], *, color: str, label: str | None = None,
                  scale: float = 1.0, marker: str | None = "o", linestyle: str = "-",
                  bounds: tuple[float, float] | None = None, band: bool = True, shift: float = 0.0) -> None:
    """A line of means with its interval as a shaded band (points without an interval: no band);
    ``bounds`` clips the band to the quantity's range (a t interval of a share can pass 100%).
    ``band=False`` draws the interval as an error bar at the last point only (shifted by ``shift``
    along x), for figures with too many series for bands to stay readable."""
    ests = [_est(e) or {} for e in estimates]
    xs = np.asarray(x, dtype=float)
    mean = np.array([np.nan if e.get("mean") is None else scale * e["mean"] for e in ests])
    low = np.array([np.nan if e.get("ci_low") is None else scale * e["ci_low"] for e in ests])
    high = np.array([np.nan if e.get("ci_high") is None else scale * e["ci_high"] for e in ests])
    ax.plot(xs, mean, color=color, label=label, marker=marker, markersize=3, linestyle=linestyle)
    if bounds is not None:
        low, high = np.clip(low, *bounds), np.clip(high, *bounds)
    ok = np.isfinite(low) & np.isfinite(high)
    if not band:
        if ok.size and ok[-1]:
            ax.errorbar([xs[-1] + shift], [mean[-1]], yerr=[[mean[-1] - low[-1]], [high[-1] - mean[-1]]],
                        color=color, capsize=2, linewidth=1.0, marker="o", markersize=3)
        return
    if ok.any():
        ax.fill_between(xs, np.where(ok, low, np.nan), np.where(ok, high, np.nan), color=color, alpha=0.15,
                        linewidth=0.6, edgecolor=color)


def forest(ax: plt.Axes, labels: list[str], estimates: list[Any], *, scale: float = 1.0,
           xlabel: str = "") -> None:
    """Paired differences as a forest plot: each row a mean with its interval, coloured by verdict
    (blue positive, vermillion negative, grey inconclusive), 0 marked; undefined rows say n/a."""
    colours = {"positive": OKABE_ITO[0], "negative": OKABE_ITO[3], "inconclusive": "grey"}
    for j, raw in enumerate(estimates):
        est = _est(raw) or {"mean": None}
        y = len(labels) - 1 - j
        if est.get("mean") is None:
            ax.text(0, y, f"n/a: {est.get('reason') or 'undefined'}", fontsize=7, color="dimgrey", va="center")
            continue
        colour = colours.get(est.get("verdict") or "inconclusive", "grey")
        mean = scale * est["mean"]
        if est.get("ci_low") is not None:
            ax.plot([scale * est["ci_low"], scale * est["ci_high"]], [y, y], color=colour, linewidth=2)
        ax.plot([mean], [y], "o", color=colour)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_ylim(-0.6, len(labels) - 0.4)
    ax.set_yticks(range(len(labels)), list(reversed(labels)), fontsize=7)
    ax.set_xlabel(xlabel)


#: at most this many sweep figures are drawn (all metrics stay in summary.json)
MAX_SWEEP_FIGURES = 12


def sweep_figures(frame: pd.DataFrame, summary: dict[str, Any], folder: Path) -> list[Path]:
    """Comparison figures: each headline number against the first grid field (mean and interval
    over repeats as a band), one line per combination of the other grid fields."""
    runs = summary.get("runs", [])
    table = pd.DataFrame([{**{f"grid.{k}": json.dumps(v) if isinstance(v, list | dict) else v
                              for k, v in r["grid"].items()},
                           "repeat": r["repeat"], **r["metrics"]} for r in runs])
    metrics = sorted({k for r in runs for k in r["metrics"]})
    grid_cols = [c for c in table.columns if c.startswith("grid.")]
    paths = []
    if len(metrics) > MAX_SWEEP_FIGURES:
        import warnings

        warnings.warn(f"sweep figures: {len(metrics)} metrics, drawing the first {MAX_SWEEP_FIGURES}; all of them are "
                      f"in summary.json (runs[].metrics); a scenario's `headline` picks which to draw", stacklevel=2)
    for metric in metrics[:MAX_SWEEP_FIGURES]:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in metric)
        paths.append(metric_vs_parameter(table, metric, grid_cols, folder / f"sweep_{safe}.png",
                                         title=f"{summary.get('scenario')}: {metric}",
                                         level=summary.get("intervals", {}).get("level", stats.DEFAULT_LEVEL)))
    return paths
