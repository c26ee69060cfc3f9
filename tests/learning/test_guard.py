"""The coordinator's safeguard (learning.guard): non-finite pieces excluded, norms bounded relative to
the members' lower quartile, honest training untouched; the shared model stays finite under NaN, inf and
1e30 reports on both substrates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coopsim.errors import InputError
from learning.guard import guard_pieces
from learning.models import build_model
from learning.params import flat_params
from learning.substrates import FedAvgTrainer, TraversalTrainer

BAD = {"nan": float("nan"), "inf": float("inf"), "1e30": 1e30}


def test_guard_excludes_non_finite_and_bounds_norms_per_row():
    g = torch.tensor([[3.0, 4.0], [6.0, 8.0], [float("nan"), 1.0], [300.0, 400.0], [0.6, 0.8]])
    sizes = np.array([1, 2, 1, 1, 1])  # per-row norms 5, 5, –, 500, 1 → lower quartile of live rows 4
    out = guard_pieces(g, sizes, max_ratio=2.0)
    assert out.excluded.tolist() == [False, False, True, False, False]
    assert out.clipped.tolist() == [False, False, False, True, False]
    assert torch.equal(out.pieces[2], torch.zeros(2))
    assert torch.allclose(out.pieces[3], torch.tensor([4.8, 6.4]))  # norm 2 × 4 × 1 row, direction kept
    assert torch.equal(out.pieces[[0, 1, 4]], g[[0, 1, 4]])  # within the bound: untouched
    assert torch.isnan(g[2, 0])  # the input is not modified
    assert out.scale.tolist() == pytest.approx([1.0, 1.0, 0.0, 8.0 / 500.0, 1.0])  # pieces = scale · reported


def test_guard_with_a_float32_piece_near_overflow():
    g = torch.ones(3, 1000)
    g[0] *= 1e30  # its float32 norm would overflow; the guard computes it in float64
    out = guard_pieces(g, None, max_ratio=5.0)
    assert not out.excluded.any() and out.clipped.tolist() == [True, False, False]
    assert torch.isfinite(out.pieces).all()
    assert out.pieces[0].double().norm().item() == pytest.approx(5 * g[1].double().norm().item(), rel=1e-5)
    with pytest.raises(InputError, match="max_ratio"):
        guard_pieces(g, None, max_ratio=0.0)


def _tamper(kind: str):
    def tamper(pieces: torch.Tensor) -> torch.Tensor:
        out = pieces.clone()
        out[0] = out[0] * BAD[kind] if kind == "1e30" else BAD[kind]
        return out

    return tamper


@pytest.mark.parametrize("kind", sorted(BAD))
def test_tl_model_stays_finite_under_bad_pieces_with_the_guard(cla_members, kind):
    tl = TraversalTrainer(build_model("mlp", 64, 10, seed=3), config={"lr": 0.1, "batch_size": 32,
                                                                     "guard_ratio": 5.0}, seed=11)
    records = []
    tl.fit(cla_members, 1, callback=records.append, tamper=_tamper(kind))
    assert torch.isfinite(flat_params(tl.model)).all()
    # member 0's bad piece: excluded (NaN, inf) or clipped (1e30) in every step where it had rows
    flagged = [r.excluded[0] if kind != "1e30" else r.clipped[0] for r in records if r.sizes[0] > 0]
    assert flagged and all(flagged)
    assert all(torch.isfinite(r.filtered).all() for r in records)


@pytest.mark.parametrize("kind", sorted(BAD))
def test_tl_model_without_the_guard_is_not_protected(cla_members, kind):
    # the control: the same reports with the guard off poison the shared model
    tl = TraversalTrainer(build_model("mlp", 64, 10, seed=3), config={"lr": 0.1, "batch_size": 32}, seed=11)
    tl.fit(cla_members, 1, tamper=_tamper(kind))
    theta = flat_params(tl.model)
    assert not torch.isfinite(theta).all() or theta.abs().max().item() > 1e20


def test_a_large_guard_leaves_honest_tl_exactly_as_without(cla_members):
    a = TraversalTrainer(build_model("mlp", 64, 10, seed=3), config={"lr": 0.1, "batch_size": 32}, seed=11)
    b = TraversalTrainer(build_model("mlp", 64, 10, seed=3), config={"lr": 0.1, "batch_size": 32,
                                                                    "guard_ratio": 1e6}, seed=11)
    a.fit(cla_members, 2)
    clipped = []
    b.fit(cla_members, 2, callback=lambda r: clipped.append(r.clipped.any() or r.excluded.any()))
    assert not any(clipped)
    assert (flat_params(a.model) - flat_params(b.model)).abs().max().item() <= 1e-5


@pytest.mark.parametrize("kind", sorted(BAD))
def test_fedavg_model_stays_finite_and_a_bad_client_gets_no_weight(cla_members, kind):
    fed = FedAvgTrainer(build_model("mlp", 64, 10, seed=3), config={"local_epochs": 1, "guard_ratio": 5.0}, seed=11)
    rec = fed.round(cla_members, 0, tamper=_tamper(kind))
    assert torch.isfinite(flat_params(fed.model)).all()
    if kind == "1e30":
        assert rec.clipped[0] and not rec.excluded[0]
    else:
        assert rec.excluded[0] and rec.weights[0] == 0 and rec.weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("guard_ratio", [None, 1.5])
def test_tl_records_keep_the_factors_when_pieces_are_raw_up_to_a_scale(cla_members, guard_ratio):
    # no filter, no tamper: the record's factors rebuild the raw pieces and filtered = scales · raw (the
    # guard at 1.5 × the lower quartile clips some members); a tamper makes the pieces arbitrary: no factors
    tl = TraversalTrainer(build_model("mlp", 64, 10, seed=3), config={"lr": 0.1, "batch_size": 32,
                                                                     "guard_ratio": guard_ratio}, seed=11)
    records = []
    tl.fit(cla_members, 1, callback=records.append)
    assert records and all(r.factors is not None for r in records)
    if guard_ratio is not None:
        assert any(r.clipped.any() for r in records)
    for r in records:
        scaled = r.factors.pieces() * torch.from_numpy(r.scales).float()[:, None]
        assert torch.allclose(r.filtered, scaled, rtol=1e-5, atol=1e-9)
        assert np.all(r.scales[~r.clipped & ~r.excluded] == 1.0) and np.all(r.scales[r.clipped] < 1.0)
    tampered = []
    tl.fit(cla_members, 1, callback=tampered.append, tamper=lambda p: p * 2.0)
    assert all(r.factors is None and r.scales is None for r in tampered)
