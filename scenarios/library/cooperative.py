"""``cooperative``: one cooperative under the mechanisms you list — the general form of the sim-based
scenarios, with no story attached. Its defaults are a quick surrogate population (30 principals, 20%
free-riders, best response) under α-power revenue shares. ``coopsim tune`` runs every trial of a
study as this scenario with one mechanism, and writes each best trial as a file of it (``best.toml``),
so that ``coopsim run best.toml`` reproduces the trial.
"""

from scenarios.library._cooperative import cooperative_scenario

SCENARIO = cooperative_scenario(
    "cooperative",
    "one cooperative under the mechanisms you list (the general form; coopsim tune's trials run as it)",
    cooperative={"rounds": 120,
                 "population": {"n_principals": 30, "behaviours": {"honest": 0.8, "free_rider": 0.2},
                                "strategy": "best_response"},
                 "training": {"mode": "surrogate"}},
    mechanisms=[("revenue shares α=1", {"kind": "revenue_shares", "alpha": 1.0})],
    replicates=6,
)
