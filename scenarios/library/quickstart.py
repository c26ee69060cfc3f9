"""``quickstart``: a small cooperative of strategic principals on real digits training, three
mechanisms side by side — α-power revenue shares of one-step counterfactual credit (V), CGSV model
rewards (C) and an equal split (the baseline) — with the same principals and seeds. Seconds.
"""

from scenarios.library._cooperative import cooperative_scenario

SCENARIO = cooperative_scenario(
    "quickstart",
    "a small cooperative on real digits training: revenue shares vs CGSV vs equal split (< 1 min)",
    cooperative={"rounds": 90,
                 "population": {"n_principals": 10, "behaviours": {"honest": 0.8, "free_rider": 0.2}},
                 "training": {"mode": "real", "dataset": "digits", "model": "mlp", "standalone_epochs": 10}},
    mechanisms=[("revenue shares (α=1)", {"kind": "revenue_shares"}),
                ("CGSV (β=1)", {"kind": "cgsv"}),
                ("equal split", {"kind": "equal_split"})],
    replicates=10,
)
