"""Proportional realisation of a menu (P, "proportional assignment")."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coopsim.errors import check
from economics._checks import positive_int, rng_from
from economics.contracts.menu import ContractMenu


@dataclass(frozen=True, eq=False)
class Realisation:
    """Draws of type counts and the models handed out.

    ``n`` (S, I) type counts; ``model_accuracy`` (S,) accuracy of the trained model ``a(n . m)``;
    ``reward_accuracy`` (S, I) accuracy of the model a type-i member receives,
    ``a(n . m) * t_i / t_bar_i(m)`` (a degraded copy; 0 where the type is absent);
    ``reward_value`` = ``value_scale * reward_accuracy``; ``utility`` = value minus ``c_i m_i``.
    """

    n: np.ndarray
    model_accuracy: np.ndarray
    reward_accuracy: np.ndarray
    reward_value: np.ndarray
    utility: np.ndarray


def realise(menu: ContractMenu, rng: np.random.Generator | int | None = None, size: int = 1) -> Realisation:
    """Sample ``size`` outcomes ``n ~ Multinomial(N, p)`` and apply proportional assignment (P).

    A type-i member receives a model worth ``v(a(n . m)) * t_i / t_bar_i(m)``: its expected value
    (over outcomes with ``n_i >= 1``) is exactly ``t_i``, and since ``t_i <= t_bar_i`` it never
    exceeds the trained model (budget).
    """
    gen = rng_from(rng)
    s = positive_int("size", size)
    n = gen.multinomial(menu.n_participants, menu.probs, size=s)
    acc = menu.accuracy(n @ menu.m)
    t_bar = menu.budget
    check(menu.success, "menu", f"success=False ({menu.message})",
          "a solved menu (a failed one can promise more than the trained model)")
    ratio = np.divide(menu.t, t_bar, out=np.zeros_like(menu.t), where=t_bar > 0)
    reward = np.where(n > 0, acc[:, None] * ratio[None, :], 0.0)
    value = menu.value_scale * reward
    utility = np.where(n > 0, value - menu.costs * menu.m, 0.0)
    return Realisation(n, acc, reward, value, utility)
