"""sim/: the Mesa model of a cooperative of strategic principals (SPEC §6).

``CooperativeModel(config, rng=seed)`` is a Mesa ``Model``; ``.step()`` runs one round; its
``datacollector`` records the model reporters ``participation``, ``accuracy``, ``revenue``,
``mean_quality``, ``fairness``, ``gini`` (and more) and the agent reporters ``credit``, ``reward``,
``utility``, ``joined`` (and more).
"""

from sim.agents import Principal
from sim.config import CooperativeConfig, MarketConfig, PopulationConfig, TrainingConfig
from sim.mechanisms import Mechanism, MechanismSettings, Offer, Payout, RoundView
from sim.model import AGENT_REPORTERS, MODEL_REPORTERS, CooperativeModel

__all__ = [
    "AGENT_REPORTERS",
    "MODEL_REPORTERS",
    "CooperativeConfig",
    "CooperativeModel",
    "MarketConfig",
    "Mechanism",
    "MechanismSettings",
    "Offer",
    "Payout",
    "PopulationConfig",
    "Principal",
    "RoundView",
    "TrainingConfig",
]
