"""``mechanism-duel``: a mixed, strategic population — honest members, low-quality members who never
clean labels, free-riders, label-flipping and scaled-gradient adversaries, and sybils splitting one
pool across identities — adapting by regret matching under each mechanism in turn (same seeds).
Participation over time, accuracy, welfare, fairness ρ, Gini of rewards and free-rider profit.
"""

from scenarios.library._cooperative import cooperative_scenario

SCENARIO = cooperative_scenario(
    "mechanism-duel",
    "a mixed strategic population (free-riders, adversaries, sybils) under five mechanisms",
    cooperative={"rounds": 30,
                 "population": {"n_principals": 20, "strategy": "regret_matching",
                                "behaviours": {"honest": 0.5, "low_quality": 0.15, "free_rider": 0.15,
                                               "label_flip": 0.05, "scaled_gradient": 0.05, "sybil": 0.1}},
                 "training": {"mode": "real", "dataset": "digits", "model": "mlp", "standalone_epochs": 10}},
    mechanisms=[("equal split", {"kind": "equal_split"}),
                ("data-size shares", {"kind": "data_size"}),
                ("revenue shares α=1", {"kind": "revenue_shares"}),
                ("CGSV β=1", {"kind": "cgsv"}),
                ("contracts", {"kind": "contracts"})],
    replicates=8,
)
