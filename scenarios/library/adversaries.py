"""``adversaries``: does any adversary out-earn honest principals, and does the shared model survive?

A population in which 30% of the principals' delegates report their gradient pieces scaled ×1000
(``scaled_gradient``), 10% flip their labels (``label_flip``) and 10% free-ride (noise), beside
honest principals who adapt by best response, under each mechanism in turn with the same seeds.
The coordinator's guard (``training.guard_ratio``, ``learning.guard``) is on, as by default:
``--set cooperative.training.guard_ratio=0`` turns it off for the control.

``summary.json`` → ``robustness``: per mechanism, each behaviour's surplus minus honest principals',
paired per replicate, with a verdict (positive: that adversary out-earns honest principals);
``mechanisms.<label>.accuracy``: what is left of the shared model.
"""

from scenarios.library._cooperative import cooperative_scenario

SCENARIO = cooperative_scenario(
    "adversaries",
    "30% scaled-gradient (×1000), label-flip and free-riding delegates: who out-earns honest members, "
    "and does the shared model survive?",
    cooperative={"rounds": 20,
                 "population": {"n_principals": 20, "gradient_scale": 1000.0,
                                "behaviours": {"honest": 0.5, "scaled_gradient": 0.3, "label_flip": 0.1,
                                               "free_rider": 0.1}},
                 "training": {"mode": "real", "dataset": "digits", "model": "mlp", "standalone_epochs": 10}},
    mechanisms=[("equal split", {"kind": "equal_split"}),
                ("data-size shares", {"kind": "data_size"}),
                ("revenue shares α=1", {"kind": "revenue_shares", "alpha": 1.0}),
                ("CGSV β=1", {"kind": "cgsv"}),
                ("contracts", {"kind": "contracts"})],
    replicates=8,
)
