"""TL is exactly centralised SGD; FedAvg and standalone behave as defined."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coopsim.errors import InputError
from learning.compare import compare_substrates
from learning.models import build_model
from learning.params import flat_params
from learning.substrates import CentralisedTrainer, FedAvgTrainer, TraversalTrainer, train_standalone
from learning.traversal import gather, member_gradients


def _pair(members, dtype=torch.float32, model="mlp", **cfg):
    config = {"lr": 0.1, "batch_size": 32, **cfg}
    tl = TraversalTrainer(build_model(model, 64, 10, seed=3, image_shape=(1, 8, 8), dtype=dtype), config=config,
                          seed=11)
    ce = CentralisedTrainer(build_model(model, 64, 10, seed=3, image_shape=(1, 8, 8), dtype=dtype),
                            config={k: v for k, v in config.items() if k not in ("cut_layer", "activation_noise")},
                            seed=11)
    return tl, ce


@pytest.mark.parametrize(("model", "dtype", "tol"), [
    ("logreg", torch.float32, 1e-5),
    ("mlp", torch.float32, 1e-5),
    # float32 CNN: max-pool windows of exactly equal values (blank digit pixels) break ties by round-off,
    # so a 1e-7 difference can switch the routed pixel; in float64 the trajectories agree to 1e-10.
    ("cnn", torch.float64, 1e-10),
])
def test_three_epochs_of_tl_equal_centralised(cla_members, model, dtype, tol):
    """Identity filters: 3 epochs of TL and of centralised training on the same virtual batches end
    with parameters within 1e-5 (float32)."""
    members = [(X.to(dtype), y) for X, y in cla_members]
    tl, ce = _pair(members, model=model, dtype=dtype)
    tl.fit(members, 3)
    ce.fit(members, 3)
    assert (flat_params(tl.model) - flat_params(ce.model)).abs().max().item() <= tol


def test_fixed_batches_and_momentum_also_match(cla_members):
    members = [(X.double(), y) for X, y in cla_members]
    tl, ce = _pair(members, dtype=torch.float64, reshuffle=False, optimizer="momentum")
    tl.fit(members, 3)
    ce.fit(members, 3)
    assert (flat_params(tl.model) - flat_params(ce.model)).abs().max().item() <= 1e-10


def test_split_mode_without_noise_is_exact_and_noise_perturbs(cla_members):
    tl, ce = _pair(cla_members, cut_layer=2)
    tl.fit(cla_members, 1)
    ce.fit(cla_members, 1)
    assert (flat_params(tl.model) - flat_params(ce.model)).abs().max().item() <= 1e-5
    noisy, ce2 = _pair(cla_members, cut_layer=2, activation_noise=0.5)
    seen = []
    noisy.fit(cla_members, 1, callback=lambda r: seen.append(r))
    ce2.fit(cla_members, 1)
    assert (flat_params(noisy.model) - flat_params(ce2.model)).abs().max().item() > 1e-3
    # the pieces still add up to the applied direction of every step
    assert all(torch.allclose(r.raw.sum(0), r.update) for r in seen)


@pytest.mark.parametrize("cut", [1, 2])
def test_split_mode_pieces_are_the_applied_step_under_mask_and_noise(cla_members, cut):
    """With noise and masking on the crossing activations (here after a Linear followed by Tanh, whose
    derivative at 0 is not 0), every step's pieces still sum to the step actually applied:
    θ_t − θ_{t+1} = η Σ_i g_i (float64, 1e-12)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 10)).double()
    members = [(X.double(), y) for X, y in cla_members]
    tl = TraversalTrainer(model, config={"lr": 0.1, "batch_size": 32, "cut_layer": cut, "activation_noise": 0.3,
                                         "activation_mask": 0.5}, seed=4)
    seen = []
    tl.fit(members, 1, callback=lambda r: seen.append((r.theta.clone(), r.raw.sum(0))))
    thetas = [t for t, _ in seen] + [flat_params(model)]
    for (theta, g), after in zip(seen, thetas[1:], strict=True):
        assert (theta - after - 0.1 * g).abs().max().item() <= 1e-12


def test_split_mode_noise_needs_a_whole_batch_engine():
    model = build_model("mlp", 64, 10, seed=0)
    for engine in ("vmap", "loop"):
        with pytest.raises(InputError, match="engine"):
            TraversalTrainer(model, config={"cut_layer": 1, "activation_mask": 0.2, "engine": engine}, seed=0)


def test_tl_is_seeded(cla_members):
    a, _ = _pair(cla_members, cut_layer=2, activation_noise=0.1)
    b, _ = _pair(cla_members, cut_layer=2, activation_noise=0.1)
    a.fit(cla_members, 1)
    b.fit(cla_members, 1)
    assert torch.equal(flat_params(a.model), flat_params(b.model))


def test_callback_sees_theta_raw_and_filtered(cla_members):
    tl, _ = _pair(cla_members)
    records = []
    tl.fit_epoch(cla_members, 0, callback=records.append, max_steps=3)
    assert len(records) == 3
    r0, r1 = records[0], records[1]
    assert r0.raw.shape == (10, r0.theta.numel()) and torch.equal(r0.raw, r0.filtered)
    # plain SGD: θ^{t+1} = θ^t − η Σ_i g̃_i
    assert torch.allclose(r1.theta, r0.theta - 0.1 * r0.update, atol=1e-6)
    assert int(r0.sizes.sum()) == 32


def test_comparison_tl_matches_centralised_fedavg_reported():
    """digits ``cla``, 10 members, equal samples processed: TL within 0.5 points of centralised."""
    result = compare_substrates(epochs=10, local_epochs=2, seed=0)
    final = result.final()
    assert abs(final["traversal (TL)"] - final["centralised"]) <= 0.005
    assert final["traversal (TL)"] > final["standalone (mean)"]
    assert set(final) == {"traversal (TL)", "centralised", "FedAvg (2 local epochs)", "standalone (mean)"}


def test_fedavg_round_is_the_weighted_average_of_client_updates(cla_members):
    fed = FedAvgTrainer(build_model("mlp", 64, 10, seed=0), config={"local_epochs": 1, "batch_size": 16}, seed=0)
    uneven = [(X[: 10 + 5 * i], y[: 10 + 5 * i]) for i, (X, y) in enumerate(cla_members[:4])]
    rec = fed.round(uneven, 0)
    sizes = np.array([10, 15, 20, 25])
    assert np.allclose(rec.weights, sizes / sizes.sum())
    expected = rec.theta + (torch.from_numpy(rec.weights).float()[:, None] * rec.updates).sum(0)
    assert torch.allclose(flat_params(fed.model), expected) and torch.allclose(rec.theta_after, expected)


def test_fedavg_local_update_leaves_the_global_model_alone(cla_members):
    fed = FedAvgTrainer(build_model("mlp", 64, 10, seed=0), config={"local_epochs": 2, "batch_size": 16}, seed=0)
    theta = flat_params(fed.model)
    kept = theta.clone()
    delta = fed.local_update(theta, cla_members[3], 0, 3)
    assert torch.equal(theta, kept) and torch.equal(flat_params(fed.model), kept)
    assert delta.abs().max() > 1e-4
    rec = fed.round(cla_members[:3], 0)
    assert all(rec.updates[i].abs().max() > 1e-4 for i in range(3))
    assert torch.equal(rec.theta, kept)


def test_fedavg_single_client_full_batch_is_one_gradient_step(cla_members):
    X, y = cla_members[4]
    model = build_model("mlp", 64, 10, seed=0)
    theta = flat_params(model)
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(F.cross_entropy(model(X), y), model.parameters())])
    fed = FedAvgTrainer(model, config={"local_epochs": 1, "batch_size": len(y), "lr": 0.2}, seed=0)
    rec = fed.round([(X, y)], 0)
    assert torch.allclose(flat_params(model), theta - 0.2 * grad, atol=1e-6)
    assert torch.equal(rec.theta, theta) and torch.allclose(rec.updates[0], -0.2 * grad, atol=1e-6)


def test_standalone_trains_each_member_on_its_own_rows(cla_members):
    members = [cla_members[0], (cla_members[1][0][:0], cla_members[1][1][:0]), cla_members[9]]
    init = flat_params(build_model("logreg", 64, 10, seed=7))
    models = train_standalone(lambda i: build_model("logreg", 64, 10, seed=7), members, 2, {"lr": 0.1}, seed=0)
    assert torch.equal(flat_params(models[1]), init)  # no rows: untouched
    # member 0 only ever saw class 0: its model predicts class 0 for its own rows
    assert (models[0](members[0][0]).argmax(1) == 0).all()
    assert not torch.equal(flat_params(models[2]), init)


def test_bad_trainer_configuration(cla_members):
    model = build_model("mlp", 64, 10, seed=0)
    with pytest.raises(InputError, match="cut_layer"):
        TraversalTrainer(model, config={"cut_layer": 3}, seed=0)
    with pytest.raises(ValueError, match="lr"):
        TraversalTrainer(model, config={"lr": -1}, seed=0)
    with pytest.raises(ValueError, match="learning_rate"):
        TraversalTrainer(model, config={"learning_rate": 0.1}, seed=0)
    tl = TraversalTrainer(model, seed=0)
    with pytest.raises(InputError, match="profiles"):
        tl.step([(cla_members[0][0][:3], cla_members[0][1][:3])], profiles=[None, None])


def test_tl_survives_a_user_resetting_gradients(cla_members):
    tl, _ = _pair(cla_members)
    tl.fit_epoch(cla_members, 0, max_steps=2)
    tl.model.zero_grad(set_to_none=True)
    # the reset must not silently freeze training: parameters still move at every step
    before = flat_params(tl.model)
    tl.fit_epoch(cla_members, 2, max_steps=1)
    assert (flat_params(tl.model) - before).abs().max() > 0


@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_factored_step_builds_the_exact_pieces_only_when_read(cla_members, model):
    """Without filters the step keeps the pieces factored; reading ``raw`` builds exactly what
    ``member_gradients`` returns at θ^t, and they sum to the applied direction."""
    members = [(X.double(), y) for X, y in cla_members]
    tl, _ = _pair(members, dtype=torch.float64, model=model)
    ref_model = build_model(model, 64, 10, seed=3, image_shape=(1, 8, 8), dtype=torch.float64)
    batch = tl.plan(members).batches(0)[0]
    parts = gather(members, batch)
    theta0 = flat_params(tl.model).clone()
    rec = tl.step(parts)
    assert not rec.pieces_materialised
    expected = member_gradients(ref_model, tl.loss_fn, parts)
    assert rec.raw is rec.filtered and rec.pieces_materialised
    assert (rec.raw - expected).abs().max().item() <= 1e-12
    assert (flat_params(tl.model) - (theta0 - 0.1 * rec.update)).abs().max().item() <= 1e-10


@pytest.mark.parametrize(("kwargs", "field"), [({"local_epochs": 0}, "local_epochs"), ({"epochs": 0}, "epochs")])
def test_comparison_refuses_zero_epochs(kwargs, field):
    with pytest.raises(InputError) as err:
        compare_substrates(**kwargs)
    assert err.value.field == field
