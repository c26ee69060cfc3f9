"""The dashboard page (Mesa's SolaraViz): controls for the duel's settings, step / play / pause /
reset, and live views of both cooperatives. Served by ``coopsim dashboard``; each browser session
builds its own :class:`~scenarios.dashboard.duel.Duel` (nothing is shared between tabs).

The initial settings come from the environment variable ``COOPSIM_DASHBOARD`` (JSON of
:class:`~scenarios.dashboard.duel.DashboardSettings` fields, set by the CLI); exports are written
under ``COOPSIM_DASHBOARD_OUT`` (default ``results/dashboard``).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import warnings

import solara
from matplotlib.figure import Figure

with warnings.catch_warnings():  # Mesa 3.3's ComponentsView trips Solara's rules-of-hooks check (harmless there)
    warnings.filterwarnings("ignore", message=".*found despite early return.*")
    from mesa.visualization import SolaraViz
    from mesa.visualization.utils import update_counter

from scenarios.config import as_toml
from scenarios.dashboard.duel import KINDS, MIX, DashboardSettings, Duel
from scenarios.figures import OKABE_ITO
from scenarios.io import atomic_write

BEHAVIOUR_COLOURS = {"honest": OKABE_ITO[0], "free_rider": OKABE_ITO[3], "low_quality": OKABE_ITO[1],
                     "label_flip": OKABE_ITO[4], "scaled_gradient": OKABE_ITO[6]}
SIDE_STYLE = ({"color": OKABE_ITO[0], "linestyle": "-"}, {"color": OKABE_ITO[3], "linestyle": "--"})


def initial_settings() -> dict[str, Any]:
    """The settings the page starts from (``COOPSIM_DASHBOARD``, validated; defaults otherwise)."""
    raw = json.loads(os.environ.get("COOPSIM_DASHBOARD", "{}") or "{}")
    return DashboardSettings.model_validate(raw).model_dump()


#: the mechanism settings' controls: (widget, min, max, step, label)
MECHANISM_CONTROLS = {"alpha": ("SliderFloat", 1.0, 16.0, 0.5, "α (revenue shares)"),
                      "horizon": ("SliderInt", 1, 10, 1, "settlement horizon (rounds)"),
                      "beta": ("SliderFloat", 0.5, 5.0, 0.5, "β (CGSV)"),
                      "contract_types": ("SliderInt", 1, 5, 1, "cost types of the contract menu")}

#: this browser session's choices in the mechanism-settings view (a Solara reactive variable is
#: scoped to its session); they apply on Reset, like every other setting
chosen_mechanism_settings: solara.Reactive[dict[str, Any]] = solara.reactive({})


def model_params(start: dict[str, Any]) -> dict[str, Any]:
    """SolaraViz's controls in the sidebar, starting from ``start``. The mechanisms' own settings are
    not among them: the mechanism-settings view shows only those of the chosen mechanisms (they reach
    the duel through :data:`chosen_mechanism_settings`; here they stay fixed at ``start``)."""
    kinds = list(KINDS)
    return {
        "mechanism_a": {"type": "Select", "value": start["mechanism_a"], "values": kinds, "label": "mechanism A"},
        "mechanism_b": {"type": "Select", "value": start["mechanism_b"], "values": kinds, "label": "mechanism B"},
        **{field: start[field] for field in MECHANISM_CONTROLS},
        "n_principals": {"type": "SliderInt", "value": start["n_principals"], "min": 2, "max": 300, "step": 1,
                         "label": "principals"},
        **{b: {"type": "SliderFloat", "value": start[b], "min": 0.0, "max": 1.0, "step": 0.05,
               "label": f"share {b.replace('_', '-')}"} for b in MIX},
        "strategy": {"type": "Select", "value": start["strategy"],
                     "values": list(DashboardSettings.model_fields["strategy"].annotation.__args__),
                     "label": "strategy"},
        "cost_low": {"type": "SliderFloat", "value": start["cost_low"], "min": 0.0, "max": 0.2, "step": 0.005,
                     "label": "lowest unit cost"},
        "cost_high": {"type": "SliderFloat", "value": start["cost_high"], "min": 0.0, "max": 0.2, "step": 0.005,
                      "label": "highest unit cost"},
        "rounds": {"type": "SliderInt", "value": start["rounds"], "min": 10, "max": 2000, "step": 10,
                   "label": "rounds"},
        "decision_period": {"type": "SliderInt", "value": start["decision_period"], "min": 1, "max": 20, "step": 1,
                            "label": "decision period"},
        "mode": {"type": "Select", "value": start["mode"], "values": ["surrogate", "real"], "label": "learning"},
        "seed": {"type": "InputText", "value": str(start["seed"]), "label": "seed"},
    }


#: figures are drawn at screen resolution with a fixed layout: a constrained layout and print
#: resolution cost most of a redraw (benchmarks/bench_dashboard.py)
DPI = 72


def _figure(ncols: int = 1, width: float = 9.0, height: float = 3.0) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), dpi=DPI)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.18, top=0.86, wspace=0.35)
    return fig, fig.subplots(1, ncols, squeeze=False)[0]


def _own_settings(model: Duel, side: str) -> str:
    kind = side.split(": ", 1)[1]
    return ", ".join(f"{f}={getattr(model.settings, f):g}" for f in KINDS[kind])


def _status(model: Duel) -> None:
    """Validation message, or the rounds run."""
    if model.error:
        solara.Error(f"These settings are not valid: {model.error}")
        return
    sides = " vs ".join(f"{side} ({_own_settings(model, side)})" if _own_settings(model, side) else side
                        for side in model.cooperatives)
    solara.Markdown(f"**Round {model.rounds_done}** of {model.settings.rounds} · {sides} · same principals "
                    f"and seed ({model.settings.seed}) under both mechanisms")
    latest = model.latest()
    if latest:
        solara.Markdown("  \n".join(f"{side}: " + ", ".join(f"{k} {v:.6g}" for k, v in values.items())
                                     for side, values in latest.items()))


#: the series on the first page (the duel at a glance) and on the details page
MAIN_SERIES = ("welfare", "accuracy", "participation", "free_rider_profit", "payments")
DETAIL_SERIES = ("mean_quality", "fairness")


def _plot_series(model: Duel, variables: tuple[str, ...], *, rows: int, cols: int, diff: bool) -> None:
    """``variables`` over rounds for both sides (and, with ``diff``, welfare B − A in the last panel)."""
    frame = model.series()
    fig = Figure(figsize=(2.7 * cols, 2.3 * rows), dpi=DPI)
    fig.subplots_adjust(left=0.08, right=0.99, bottom=0.08, top=0.92, wspace=0.4, hspace=0.4)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    sides = list(dict.fromkeys(frame.side))
    for ax, var in zip(axes, variables, strict=False):
        for k, side in enumerate(sides):
            part = frame[(frame.side == side) & (frame.variable == var)]
            ax.plot(part["round"], part["value"], label=side, **SIDE_STYLE[k % 2])
        ax.set_title(var.replace("_", " "), fontsize=9)
        ax.tick_params(labelsize=7)
    if diff:
        ax = axes[len(variables)]
        if len(sides) == 2:
            a, b = (frame[(frame.side == s) & (frame.variable == "welfare")].set_index("round")["value"]
                    for s in sides)
            gap = (b - a).dropna()
            ax.plot(gap.index, gap.values, color=OKABE_ITO[2])
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_title("welfare: B − A", fontsize=9)
        ax.tick_params(labelsize=7)
    if sides:
        axes[0].legend(fontsize=6, loc="best")
    solara.FigureMatplotlib(fig, format="png")


def _series(model: Duel) -> None:
    """The duel at a glance over rounds, both sides, and welfare B − A."""
    _plot_series(model, MAIN_SERIES, rows=2, cols=3, diff=True)


def _details(model: Duel) -> None:
    """Label quality and fairness over rounds, both sides (the details page)."""
    _plot_series(model, DETAIL_SERIES, rows=1, cols=2, diff=False)


def _surplus(model: Duel) -> None:
    """This round's mean surplus per behaviour, each side: does free-riding pay?"""
    frame = model.surplus_by_behaviour()
    if not model.rounds_done:  # before the first round nobody has a payoff yet
        frame = frame.iloc[0:0]
    behaviours, sides = list(dict.fromkeys(frame.behaviour)), list(dict.fromkeys(frame.side))
    fig, axes = _figure(1, width=6.0, height=2.8)
    ax = axes[0]
    width = 0.8 / max(1, len(sides))
    for k, side in enumerate(sides):
        part = frame[frame.side == side].set_index("behaviour").reindex(behaviours)
        ax.bar([i + (k - (len(sides) - 1) / 2) * width for i in range(len(behaviours))], part["surplus"],
               width=width, label=side, color=SIDE_STYLE[k % 2]["color"])
    ax.set_xticks(range(len(behaviours)), behaviours, fontsize=8)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_ylabel("surplus this round (money)", fontsize=8)
    ax.set_title("who gains, by behaviour (mean over principals)", fontsize=9)
    if sides:
        ax.legend(fontsize=7)
    solara.FigureMatplotlib(fig, format="png")


def _principals(model: Duel) -> None:
    """Every principal's current action, each side: out, or the share m of its pool (marker: cleaned q)."""
    frame = model.principals()
    sides = list(dict.fromkeys(frame.side))
    fig, axes = _figure(max(1, len(sides)), width=9.0, height=2.6)
    for ax, side in zip(axes, sides, strict=False):
        part = frame[frame.side == side]
        for beh, group in part.groupby("behaviour"):
            ax.scatter(group["principal"], group["m"], s=12 + 20 * group["q"], label=beh,
                       color=BEHAVIOUR_COLOURS.get(beh, "grey"), alpha=0.8)
        ax.set_ylim(-0.05, 1.05)
        ax.set_title(f"{side}: share of its pool each principal brings (0: out)", fontsize=9)
        ax.set_xlabel("principal", fontsize=8)
        ax.tick_params(labelsize=7)
    if sides:
        axes[0].legend(fontsize=7, loc="lower right")
    solara.FigureMatplotlib(fig, format="png")


def _menus(model: Duel) -> None:
    """Contracts: the posted menu and how many principals took each item."""
    menus = model.menus()
    if not menus:
        solara.Markdown("*No self-selecting mechanism (contracts) in this duel.*")
    for side, table in menus.items():
        solara.Markdown(f"**{side}: the posted menu**")
        solara.DataFrame(table)


def _mechanism_settings(model: Duel) -> None:
    """The settings of the mechanisms in the duel, and only theirs (they apply on Reset)."""
    s = model.settings
    fields = [f for f in MECHANISM_CONTROLS if f in KINDS[s.mechanism_a] or f in KINDS[s.mechanism_b]]
    solara.Markdown(f"**Mechanism settings** — A: {s.mechanism_a}, B: {s.mechanism_b} (choose the mechanisms in "
                    f"the sidebar; everything applies on Reset)")
    if not fields:
        solara.Markdown("*These mechanisms have no settings of their own here.*")
    for field in fields:
        widget, low, high, step, label = MECHANISM_CONTROLS[field]
        value = chosen_mechanism_settings.value.get(field, getattr(s, field))

        def change(v: Any, field: str = field) -> None:
            chosen_mechanism_settings.value = {**chosen_mechanism_settings.value, field: v}

        slider = solara.SliderFloat if widget == "SliderFloat" else solara.SliderInt
        slider(label, value=value, min=low, max=high, step=step, on_value=change, thumb_label="always")


def _export(model: Duel) -> None:
    """Write the current settings as a scenario file that reproduces this run, round for round."""
    written, set_written = solara.use_state("")

    def export() -> None:
        folder = Path(os.environ.get("COOPSIM_DASHBOARD_OUT", "results/dashboard"))
        path = folder / f"dashboard-{time.strftime('%Y%m%d-%H%M%S')}-round{model.rounds_done}.toml"
        text = as_toml(model.document(), f"coopsim dashboard export: {model.rounds_done} rounds, seed "
                                         f"{model.settings.seed}\ncoopsim run this file to reproduce the dashboard")
        atomic_write(path, lambda tmp: tmp.write_text(text))
        set_written(str(path.resolve()))

    solara.Button("Export as scenario", on_click=export, disabled=bool(model.error), color="secondary")
    if written:
        solara.Markdown(f"Written: `{written}`  \nReproduce it: `coopsim run {written}`")


def _view(body: Any) -> Any:
    """A SolaraViz view around ``body``: it reads SolaraViz's update counter, so it is redrawn after
    every step (its props, the model, never change), and it draws into one column that stays the
    same widget, so the page's grid keeps showing it (a grid item whose top widget is replaced by a
    redraw stays blank in the browser)."""

    @solara.component
    def View(model: Duel) -> None:
        update_counter.get()
        with solara.Column():
            body(model)

    View.__name__ = body.__name__.strip("_").capitalize()
    return View


Status, MechanismSettings, Series, Details, Surplus, Principals, Menus, Export = (
    _view(f) for f in (_status, _mechanism_settings, _series, _details, _surplus, _principals, _menus, _export))


def components() -> list[tuple[Any, int]]:
    """SolaraViz's views: components that read SolaraViz's update counter, so they redraw after every
    step (their props, the model, do not change). Page 0 is the duel at a glance; page 1 holds the
    details (label quality, fairness, every principal's action), drawn only while it is open."""
    return [*((view, 0) for view in (Status, MechanismSettings, Series, Surplus, Menus, Export)),
            *((view, 1) for view in (Details, Principals))]


class _SeedAsText(Duel):
    """The duel as the page builds it: the seed arrives as text from its input, and the mechanism
    settings chosen in the page's own view (:data:`chosen_mechanism_settings`) join the sidebar's."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs = {**kwargs, **chosen_mechanism_settings.value}
        seed = kwargs.get("seed")
        if isinstance(seed, str):
            kwargs["seed"] = int(seed) if seed.strip().isdigit() else seed
        super().__init__(**kwargs)


def new_duel(settings: dict[str, Any]) -> Duel:
    """A duel from the page's settings (the seed arrives as text from its input)."""
    return _SeedAsText(**settings)


@solara.component
def Dashboard(model: Duel, start: dict[str, Any]) -> None:
    """SolaraViz over ``model``, its controls starting from ``start``."""
    SolaraViz(model, components=components(), model_params=model_params(start),
              name="coopsim: two mechanisms, one population", play_interval=150)


@solara.component
def Page() -> None:
    start = solara.use_memo(initial_settings, [])
    model = solara.use_memo(lambda: new_duel(start), [])  # one model per browser session
    Dashboard(model, start)
