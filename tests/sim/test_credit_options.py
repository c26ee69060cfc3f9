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


def _gaps_to_reference(monkeypatch, training: dict, reference) -> tuple[list[float], list[float], int]:
    """Two rounds of 6 always-joining principals (half flip labels). Per round: the largest gap between
    the backend's credit and the sum of ``reference(backend, rec)`` over the round's TL steps, and the
    sum over those steps of the reference's largest magnitude; and the number of steps seen. (Per
    round, not per step: first-order credit is added at the end of the round.)"""
    from sim.backends import RealBackend

    gaps, sizes, want = [], [], []
    credit_step, train_round = RealBackend._credit_step, RealBackend.train_round

    def step(self, rec, credit, round_index, held):
        credit_step(self, rec, credit, round_index, held)
        want.append(reference(self, rec))

    def round_(self, round_index, members, kinds):
        before = len(want)
        out = train_round(self, round_index, members, kinds)
        steps = want[before:]
        gaps.append(np.abs(out.credit - np.sum(steps, axis=0)).max())
        sizes.append(sum(np.abs(w).max() for w in steps))
        return out

    monkeypatch.setattr(RealBackend, "_credit_step", step)
    monkeypatch.setattr(RealBackend, "train_round", round_)
    cfg = {
        "rounds": 2,
        "training": {"standalone_epochs": 1, **training},
        "population": {"n_principals": 6, "strategy": "fixed", "behaviours": {"honest": 0.5, "label_flip": 0.5}},
    }
    CooperativeModel(cfg, rng=0).run()
    return gaps, sizes, len(want)


def test_exact_credit_equals_the_economics_reference(monkeypatch):
    # the real backend builds V3's candidates from the trainer's float32 tensors; economics'
    # one_step_counterfactual (float64 numpy, a loss oracle) is the definition
    from economics.valuation import one_step_counterfactual

    def reference(backend, rec):
        return one_step_counterfactual(rec.theta.double().numpy(), rec.filtered.double().numpy(), rec.lr,
                                       backend._loss_at)

    gaps, sizes, steps = _gaps_to_reference(monkeypatch, {"model": "multitask"}, reference)
    assert steps == 8 and len(gaps) == 2 and max(sizes) > 1e-3
    assert max(gaps) < 4 * 2e-6  # a float32 rounding step or two of the validation loss, per step


def _autograd_validation_gradient(backend, theta):
    """∇L_val(θ) by autograd through the model itself (not the hand-written gradient)."""
    from torch.func import functional_call, grad

    from learning.params import ParamLayout

    layout = ParamLayout.of(backend.model)
    backend.model.eval()
    try:
        return grad(lambda p: backend.loss_fn(functional_call(backend.model, layout.unflatten(p), (backend.X_val,)),
                                              backend.y_val))(theta.detach())
    finally:
        backend.model.train()


def test_first_order_credit_equals_the_economics_reference(monkeypatch):
    # the backend takes the validation gradients of a round's steps in one batched call and the
    # products in torch (float32 mat-vecs where the pieces are); economics' one_step_first_order
    # (numpy, float64 redo of overflowing rows) with autograd's gradient at each θ_t is the reference
    from economics.valuation import one_step_first_order

    def reference(backend, rec):
        grad = _autograd_validation_gradient(backend, rec.theta)
        return one_step_first_order(rec.filtered.double().numpy(), rec.lr, grad.double().numpy())

    gaps, sizes, steps = _gaps_to_reference(monkeypatch, {"credit": "first_order"}, reference)
    assert steps == 8 and len(gaps) == 2 and min(sizes) > 1e-4
    # float32 products of ~5,000 terms against the float64 ones: a relative 1e-5 of each step's largest credit
    for gap, size in zip(gaps, sizes, strict=True):
        assert gap < 1e-5 * size


def test_first_order_credit_held_or_credited_step_by_step_agrees(monkeypatch):
    # a round's steps are held for one batched gradient; past FIRST_ORDER_HOLD_BYTES they are credited
    # early (here: every step on its own); the credit is the same up to float32 rounding
    import sim.backends

    def credits() -> np.ndarray:
        cfg = {"rounds": 2, "training": {"credit": "first_order", "standalone_epochs": 1},
               "population": {"n_principals": 5, "strategy": "fixed"}}
        _, agents = CooperativeModel(cfg, rng=3).run().frames()
        return agents["credit"].to_numpy()

    held = credits()
    monkeypatch.setattr(sim.backends, "FIRST_ORDER_HOLD_BYTES", 0)
    each = credits()
    assert np.abs(held).max() > 1e-4
    np.testing.assert_allclose(each, held, rtol=1e-5, atol=1e-9)
