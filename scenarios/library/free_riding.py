"""``free-riding``: does free-riding pay? One strategic population with 20% free-riders (they join,
claim their whole pool and contribute noise) run under each mechanism in turn with the same seeds:
equal split and data-size shares (baselines that pay claims), α-power revenue shares of one-step
counterfactual credit (V5, α = 1 and 2), CGSV model rewards (C) and contracts (P).
``summary.json`` has ``free_rider_profit`` per mechanism: the mean surplus of free-riders minus that
of honest members over the final rounds (positive: free-riding pays).
"""

from scenarios.library._cooperative import cooperative_scenario

SCENARIO = cooperative_scenario(
    "free-riding",
    "does free-riding pay? 20% free-riders under equal split, data-size, revenue shares, CGSV, contracts",
    cooperative={"rounds": 80,
                 "population": {"n_principals": 20, "behaviours": {"honest": 0.8, "free_rider": 0.2},
                                "free_ride": "noise"},
                 "training": {"mode": "real", "dataset": "digits", "model": "mlp", "standalone_epochs": 10}},
    mechanisms=[("equal split", {"kind": "equal_split"}),
                ("data-size shares", {"kind": "data_size"}),
                ("revenue shares α=1", {"kind": "revenue_shares", "alpha": 1.0}),
                ("revenue shares α=2", {"kind": "revenue_shares", "alpha": 2.0}),
                ("CGSV β=1", {"kind": "cgsv"}),
                ("contracts", {"kind": "contracts"})],
    replicates=12,
)
