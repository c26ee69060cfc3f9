"""training.credit (issue 17): exact one-step counterfactual (V3) or its first-order term, in real mode."""

import numpy as np
import pytest
from pydantic import ValidationError

from coopsim.errors import InputError
from sim import CooperativeModel
from sim.config import TrainingConfig


def test_credit_option_is_validated():
    assert TrainingConfig().credit == "exact"
    assert TrainingConfig(credit="first_order").credit == "first_order"
    with pytest.raises((InputError, ValidationError), match="credit"):
        TrainingConfig(credit="second_order")


def _credit_by_agent(credit: str, substrate: str, seed: int):
    """Cumulative credit per agent over 3 rounds: 4 honest members and 4 whose reported pieces point
    up the loss (scaled gradients with factor −1), every member contributing every round."""
    cfg = {
        "rounds": 3,
        "training": {"credit": credit, "substrate": substrate, "standalone_epochs": 1},
        "population": {
            "n_principals": 8,
            "strategy": "fixed",
            "gradient_scale": -1.0,
            "behaviours": {"honest": 0.5, "scaled_gradient": 0.5},
        },
    }
    _, agents = CooperativeModel(cfg, rng=seed).run().frames()
    return agents.groupby("AgentID").agg(credit=("credit", "sum"), behaviour=("behaviour", "first"))


@pytest.mark.parametrize("substrate", ["tl", "fedavg"])
def test_first_order_credit_has_the_sign_pattern_of_exact(substrate):
    exact = _credit_by_agent("exact", substrate, seed=1)
    first = _credit_by_agent("first_order", substrate, seed=1)
    assert list(exact.behaviour) == list(first.behaviour)
    honest = (exact.behaviour == "honest").to_numpy()
    assert (exact.credit[honest] > 0).all() and (exact.credit[~honest] < 0).all()
    np.testing.assert_array_equal(np.sign(first.credit), np.sign(exact.credit))
    # close to exact, not equal: the neglected second-order term is small against the credit itself
    assert not np.allclose(first.credit, exact.credit, rtol=1e-9, atol=0)
    np.testing.assert_allclose(first.credit, exact.credit, rtol=0.3)


def _gaps_to_reference(monkeypatch, training: dict, reference) -> tuple[list[float], list[float]]:
    """Two rounds of 6 always-joining principals (half flip labels): per TL step, the largest gap between
    the backend's credit and ``reference(backend, rec)``, and the reference's largest magnitude."""
    from sim.backends import RealBackend

    gaps, sizes = [], []
    credit_step = RealBackend._credit_step

    def checked(self, rec, credit, round_index):
        before = credit.copy()
        credit_step(self, rec, credit, round_index)
        want = reference(self, rec)
        gaps.append(np.abs(credit - before - want).max())
        sizes.append(np.abs(want).max())

    monkeypatch.setattr(RealBackend, "_credit_step", checked)
    cfg = {
        "rounds": 2,
        "training": {"standalone_epochs": 1, **training},
        "population": {"n_principals": 6, "strategy": "fixed", "behaviours": {"honest": 0.5, "label_flip": 0.5}},
    }
    CooperativeModel(cfg, rng=0).run()
    return gaps, sizes


def test_exact_credit_equals_the_economics_reference(monkeypatch):
    # the real backend builds V3's candidates from the trainer's float32 tensors; economics'
    # one_step_counterfactual (float64 numpy, a loss oracle) is the definition
    from economics.valuation import one_step_counterfactual

    def reference(backend, rec):
        return one_step_counterfactual(rec.theta.double().numpy(), rec.filtered.double().numpy(), rec.lr,
                                       backend._loss_at)

    gaps, steps = _gaps_to_reference(monkeypatch, {"model": "multitask"}, reference)
    assert len(gaps) == 8 and max(steps) > 1e-3
    assert max(gaps) < 2e-6  # a float32 rounding step or two of the validation loss


def test_first_order_credit_equals_the_economics_reference(monkeypatch):
    # the backend takes the product in torch (float32 mat-vec where the pieces are); economics'
    # one_step_first_order (numpy, float64 redo of overflowing rows) is the reference
    from economics.valuation import one_step_first_order

    def reference(backend, rec):
        grad = backend._grad_at(rec.theta)
        return one_step_first_order(rec.filtered.double().numpy(), rec.lr, grad.double().numpy())

    gaps, sizes = _gaps_to_reference(monkeypatch, {"credit": "first_order"}, reference)
    assert len(gaps) == 8 and max(sizes) > 1e-4
    # float32 products of ~5,000 terms against the float64 ones: a relative 1e-5 of the largest credit
    assert max(gaps) < 1e-5 * max(sizes)
