"""``coopsim dashboard``: check the setup, then serve the page (:mod:`scenarios.dashboard.app`) with
Solara. Everything that can be wrong (the extra not installed, a bad scenario, a port in use) is bad
input, reported before the server starts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from coopsim.errors import InputError

INSTALL = "pip install -e '.[dashboard]' (from the repository) or pip install 'coopsim[dashboard]'"


def check_installed() -> None:
    """The optional extra (Mesa's visualisation with Solara) is importable."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*found despite early return.*")
            import mesa.visualization  # noqa: F401
            import solara  # noqa: F401
    except ImportError as exc:
        raise InputError("dashboard", f"not installed ({exc.name or exc})", f"the dashboard extra: {INSTALL}") from None


def settings_from(target: str) -> dict[str, Any]:
    """The dashboard's starting settings from a sim-based scenario (a library name or a file): its
    population, time and first two mechanisms."""
    from scenarios.dashboard.duel import KINDS, MECHANISM_FIELDS, MIX, DashboardSettings
    from scenarios.registry import resolve

    cfg = resolve(target).config
    coop = getattr(cfg, "cooperative", None)
    mechanisms = getattr(cfg, "mechanisms", None)
    if coop is None or not mechanisms:
        raise InputError("scenario", target, "a sim-based scenario (with a cooperative and mechanisms), e.g. "
                         "quickstart, free-riding, cooperative, or a file of one")
    pop = coop.population
    other = sorted(set(pop.behaviours) - {"honest", *MIX})
    if other:
        raise InputError("cooperative.population.behaviours", other, f"behaviours the dashboard shows: honest, "
                         f"{', '.join(MIX)}")
    out: dict[str, Any] = {"n_principals": pop.n_principals, "strategy": pop.strategy,
                           "cost_low": pop.unit_cost[0], "cost_high": pop.unit_cost[1], "rounds": coop.rounds,
                           "decision_period": coop.decision_period, "mode": coop.training.mode, "seed": cfg.seed,
                           **{b: pop.behaviours.get(b, 0.0) for b in MIX}}
    for side, variant in zip(("a", "b"), [*mechanisms, mechanisms[-1]][:2], strict=True):
        settings = variant.mechanism.model_dump()
        kind = settings["kind"]
        if kind not in KINDS:
            raise InputError(f"mechanisms.{'ab'.index(side)}.mechanism.kind", kind,
                             f"a mechanism the dashboard offers: {', '.join(KINDS)}")
        out[f"mechanism_{side}"] = kind
        for field in KINDS[kind]:
            out[field] = settings[MECHANISM_FIELDS[field]]
    return DashboardSettings.model_validate(out).model_dump()


def check_port(host: str, port: int) -> None:
    """The port is free on ``host`` (a port in use is reported plainly, before anything starts)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InputError("--port", port, f"a free port on {host}: this one is in use or not available "
                             f"({exc.strerror}); pass another with --port") from None


def serve(target: str | None, *, host: str, port: int, out: Path, fetch_assets: bool = True,
          announce: Any = print) -> int:
    """Check, then run Solara's server in the foreground; returns its exit status."""
    check_installed()
    start = settings_from(target) if target else {}
    check_port(host, port)
    if fetch_assets:
        from scenarios.dashboard.assets import fill_cache, missing

        if missing():
            announce(f"fetching the page's assets from the npm registry: {', '.join(missing())}")
            try:
                fill_cache()
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
                announce(f"warning: {exc}; without them the page loads from Solara's CDN (needs internet)")
    from scenarios.dashboard import app

    env = {**os.environ, "COOPSIM_DASHBOARD": json.dumps(start), "COOPSIM_DASHBOARD_OUT": str(Path(out).resolve()),
           "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "false"}
    announce(f"dashboard: http://{host}:{port}  (exports go to {Path(out).resolve()}; Ctrl-C stops it)")
    cmd = [sys.executable, "-m", "solara", "run", str(Path(app.__file__)), "--host", host, "--port", str(port),
           "--no-open", "--production"]
    return subprocess.call(cmd, env=env)
