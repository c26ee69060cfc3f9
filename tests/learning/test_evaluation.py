"""Batched evaluation (the V3 hot path) equals one-by-one evaluation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coopsim.errors import InputError
from learning.evaluation import accuracy, batched_accuracy, batched_loss, loss_value, stacked_supported
from learning.models import MultiTaskLoss, build_model
from learning.params import flat_params, set_flat_params
from learning.substrates.common import dataset_tensors


@pytest.mark.parametrize("model_name", ["logreg", "mlp", "cnn", "multitask"])
@pytest.mark.parametrize("method", ["auto", "stacked", "vmap", "loop"])
def test_batched_loss_equals_sequential(risk_digits, model_name, method):
    if method == "stacked" and model_name == "cnn":
        pytest.skip("no stacked forward for convolutions (auto falls back to loop)")
    model = build_model(model_name, 64, 10, seed=0, image_shape=(1, 8, 8), task_classes={"risk": 2})
    loss = MultiTaskLoss(("digit", "risk")) if model_name == "multitask" else F.cross_entropy
    X, y = dataset_tensors(risk_digits.val)
    if model_name != "multitask":
        y = y[:, 0]
    theta = flat_params(model)
    candidates = theta + 0.05 * torch.randn(6, theta.numel(), generator=torch.Generator().manual_seed(0))
    got = batched_loss(model, loss, candidates, X, y, method=method)
    want = []
    for p in candidates:
        set_flat_params(model, p)
        want.append(loss_value(model, loss, X, y))
    set_flat_params(model, theta)
    assert torch.allclose(got, torch.tensor(want), atol=1e-5)
    assert torch.equal(flat_params(model), theta)  # evaluation never touches the model


def test_accuracy_of_a_multitask_head(risk_digits):
    model = build_model("multitask", 64, 10, seed=0, task_classes={"risk": 2})
    X, y = dataset_tensors(risk_digits.val)
    assert 0.0 <= accuracy(model, X, y, "risk") <= 1.0
    with pytest.raises(ValueError, match="task"):
        accuracy(model, X, y, "credit")


def _sequential_losses(model, loss, candidates, X, y):
    theta = flat_params(model)
    out = []
    for p in candidates:
        set_flat_params(model, p)
        out.append(loss_value(model, loss, X, y))
    set_flat_params(model, theta)
    return torch.tensor(out, dtype=torch.float64)


def _candidates(model, n, scale, seed=0):
    theta = flat_params(model)
    g = torch.Generator().manual_seed(seed)
    return theta + scale * torch.randn(n, theta.numel(), generator=g, dtype=theta.dtype)


@pytest.mark.parametrize("rows", [40, 32, 1])
def test_stacked_forward_layer_mix_float64(rows):
    """Offsets through ReLU, Tanh, a bias-free Linear and a trailing element-wise layer, with and without
    padded rows: equal to the module's own forward (float64, 1e-10)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 6, bias=False), torch.nn.ReLU(),
        torch.nn.Linear(6, 6), torch.nn.Tanh(), torch.nn.Dropout(0.5), torch.nn.Linear(6, 4), torch.nn.Sigmoid(),
    ).double().eval()
    X = torch.randn(rows, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (rows,), generator=torch.Generator().manual_seed(2))
    cands = _candidates(model, 5, 0.3)
    got = batched_loss(model, F.cross_entropy, cands, X, y, method="stacked")
    assert torch.allclose(got, _sequential_losses(model, F.cross_entropy, cands, X, y), atol=1e-10, rtol=0)


def test_stacked_forward_with_any_loss(risk_digits):
    """A loss other than plain cross-entropy goes through the stacked logits unchanged."""
    model = build_model("mlp", 64, 10, seed=0, hidden=(16, 8)).double()
    X, y = dataset_tensors(risk_digits.val)
    X, y = X.double(), y[:, 0]

    def smoothed(out, t):
        return F.cross_entropy(out, t, label_smoothing=0.1)

    cands = _candidates(model, 4, 0.05)
    got = batched_loss(model, smoothed, cands, X, y, method="stacked")
    assert torch.allclose(got, _sequential_losses(model, smoothed, cands, X, y), atol=1e-10, rtol=0)


def test_stacked_plan_follows_a_replaced_layer(risk_digits):
    """The cached layer plan is rebuilt when the model's modules change."""
    model = build_model("mlp", 64, 10, seed=0, hidden=(16,))
    X, y = dataset_tensors(risk_digits.val)
    y = y[:, 0]
    cands = _candidates(model, 3, 0.05)
    batched_loss(model, F.cross_entropy, cands, X, y)  # caches the plan
    model[1] = torch.nn.Tanh()
    got = batched_loss(model, F.cross_entropy, cands, X, y)
    assert torch.allclose(got, _sequential_losses(model, F.cross_entropy, cands, X, y).float(), atol=1e-5)
    model[1] = torch.nn.Conv1d(1, 1, 1)  # not stackable any more: auto falls back, stacked refuses
    with pytest.raises(ValueError, match="method"):
        batched_loss(model, F.cross_entropy, flat_params(model)[None], X, y, method="stacked")


def test_batched_accuracy_names_an_unknown_head(risk_digits):
    model = build_model("multitask", 64, 10, seed=0, task_classes={"risk": 2})
    X, y = dataset_tensors(risk_digits.val)
    with pytest.raises(ValueError, match="task"):
        batched_accuracy(model, flat_params(model)[None], X, y, task="credit")


class _TiedMLP(torch.nn.Sequential):
    def __init__(self) -> None:
        super().__init__(torch.nn.Linear(6, 6), torch.nn.Tanh(), torch.nn.Linear(6, 6))
        self[2].weight = self[0].weight


@pytest.mark.parametrize("method", ["auto", "vmap", "loop"])
def test_tied_weights_fall_back_from_the_stacked_forward(method):
    """A weight shared by two layers is one entry of the flat vector: no stacked plan, every other
    method (and auto) still equals the plain forward."""
    model = _TiedMLP().double()
    X = torch.randn(9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.arange(9) % 6
    assert not stacked_supported(model)
    cands = _candidates(model, 3, 0.1)
    got = batched_loss(model, F.cross_entropy, cands, X, y, method=method)
    assert torch.allclose(got, _sequential_losses(model, F.cross_entropy, cands, X, y), atol=1e-12, rtol=0)


def test_infinite_logits_give_the_plain_forwards_loss():
    """A non-label logit at −inf (a diverged candidate) or in the padding columns must not turn into
    0·inf = NaN: the value equals F.cross_entropy's."""
    model = torch.nn.Sequential(torch.nn.Linear(2, 3))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, -1e39]]))
        model[0].bias.zero_()
    X, y = torch.tensor([[0.0, 1.0]] * 5), torch.zeros(5, dtype=torch.long)
    want = F.cross_entropy(model(X), y)
    assert torch.isfinite(want)
    got = batched_loss(model, F.cross_entropy, flat_params(model)[None], X, y)
    assert torch.allclose(got, want[None])


def test_the_cached_plan_follows_changed_parameters(risk_digits):
    model = build_model("mlp", 64, 10, seed=0, hidden=(8,))
    X, y = dataset_tensors(risk_digits.val)
    y = y[:, 0]
    batched_loss(model, F.cross_entropy, flat_params(model)[None], X, y)
    model[2].bias = None  # same modules, one parameter fewer
    cands = _candidates(model, 2, 0.05)
    got = batched_loss(model, F.cross_entropy, cands, X, y)
    assert torch.allclose(got, _sequential_losses(model, F.cross_entropy, cands, X, y).float(), atol=1e-5)


def test_a_reused_activation_module_is_applied_at_every_slot():
    act = torch.nn.Tanh()
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), act, torch.nn.Linear(5, 5), act, torch.nn.Linear(5, 3)).double()
    X = torch.randn(7, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    y = torch.arange(7) % 3
    cands = _candidates(model, 2, 0.1)
    got = batched_loss(model, F.cross_entropy, cands, X, y, method="stacked")
    assert torch.allclose(got, _sequential_losses(model, F.cross_entropy, cands, X, y), atol=1e-12, rtol=0)


def test_an_empty_validation_set_is_named():
    model = build_model("mlp", 4, 3, seed=0, hidden=(5,))
    with pytest.raises(ValueError, match="X, y"):
        batched_loss(model, F.cross_entropy, flat_params(model)[None], torch.zeros(0, 4),
                     torch.zeros(0, dtype=torch.long))


# ------------------------------------------------------------ V3 from the trainer's tensors; ∇L_val


def _task(risk_digits, model_name, dtype=torch.float32):
    model = build_model(model_name, 64, 10, seed=0, image_shape=(1, 8, 8), task_classes={"risk": 2}).to(dtype)
    loss = MultiTaskLoss(("digit", "risk")) if model_name == "multitask" else F.cross_entropy
    X, y = dataset_tensors(risk_digits.val)
    return model, loss, X.to(dtype), (y if model_name == "multitask" else y[:, 0])


@pytest.mark.parametrize("model_name", ["mlp", "multitask", "cnn"])
def test_counterfactual_losses_give_v3_of_the_reference(risk_digits, model_name):
    from economics.valuation import one_step_counterfactual
    from learning.evaluation import counterfactual_losses

    model, loss, X, y = _task(risk_digits, model_name)
    theta = flat_params(model)
    pieces = torch.randn(5, theta.numel(), generator=torch.Generator().manual_seed(1))
    pieces[2] = 0.0

    def oracle(params):  # the float64 reference path: numpy candidates cast to the model's dtype
        return batched_loss(model, loss, torch.from_numpy(params).to(theta.dtype), X, y).double().numpy()

    want = one_step_counterfactual(theta.double().numpy(), pieces.double().numpy(), 0.3, oracle)
    for max_entries in (1 << 25, 2 * theta.numel()):  # one call, and chunks of two candidates
        base, rows, losses = counterfactual_losses(model, loss, theta, pieces, 0.3, X, y, max_entries=max_entries)
        assert rows.tolist() == [0, 1, 3, 4]
        got = torch.zeros(5, dtype=torch.float64)
        got[rows] = base - losses.double()
        assert torch.allclose(got, torch.from_numpy(want), atol=2e-6, rtol=1e-4)
        assert got[2] == 0.0
    assert torch.equal(flat_params(model), theta)
    base, rows, losses = counterfactual_losses(model, loss, theta, torch.zeros_like(pieces), 0.3, X, y)
    assert len(rows) == 0 == len(losses) and base == pytest.approx(loss_value(model, loss, X, y), abs=1e-6)
    bad = pieces.clone()
    bad[0, 0], bad[3, -1] = float("nan"), -float("inf")
    _, rows, losses = counterfactual_losses(model, loss, theta, bad, 0.3, X, y)
    assert rows.tolist() == [0, 1, 3, 4] and losses.isnan().tolist() == [True, False, True, False]


@pytest.mark.parametrize("model_name", ["logreg", "mlp", "multitask", "cnn", "tanh-sigmoid"])
def test_validation_gradient_at_other_parameters(risk_digits, model_name):
    # by hand (stacked models: Linear and ReLU/Tanh/Sigmoid, cross-entropy or multi-task) or by
    # autograd (cnn), the gradient of the loss at parameters that are not the model's own
    from learning.evaluation import ValidationGradient, _stacked_plan, validation_gradient

    if model_name == "tanh-sigmoid":
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8, bias=False),
                                    torch.nn.Sigmoid(), torch.nn.Linear(8, 10))
        _, loss, X, y = _task(risk_digits, "mlp")
    else:
        model, loss, X, y = _task(risk_digits, model_name)
    theta = flat_params(model)
    other = _candidates(model, 1, 0.05)[0]
    got = validation_gradient(model, loss, other, X, y)
    plan = _stacked_plan(model)
    assert (plan is not None and plan.differentiable(loss)) == (model_name != "cnn")  # by hand, else autograd
    grad_at = ValidationGradient(model, loss, X, y)  # reused step after step
    assert torch.equal(grad_at(other), got) and not torch.equal(grad_at(theta), got)
    assert torch.equal(flat_params(model), theta)  # the model's parameters and grads are untouched
    assert all(p.grad is None for p in model.parameters())
    set_flat_params(model, other)
    loss(model(X), y).backward()
    want = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert got.shape == theta.shape and torch.allclose(got, want, atol=1e-6)
    # many vectors in one call (a round's steps): row t is the gradient at θ_t, as one call at θ_t gives
    # (float32: the batched matmuls may round differently from the single one, hence a tolerance)
    thetas = torch.stack([other, theta, *_candidates(model, 2, 0.1)])
    many = grad_at.many(thetas)
    assert many.shape == thetas.shape
    for t in range(len(thetas)):
        assert torch.allclose(many[t], grad_at(thetas[t]), atol=1e-7, rtol=1e-5)
    assert torch.allclose(many[0], want, atol=1e-6)
    with pytest.raises(InputError, match="thetas"):
        grad_at.many(thetas[:, :-1])


def test_first_order_term_from_the_validation_gradient_tends_to_v3(risk_digits):
    # float64 MLP: η·⟨p, ∇L(θ)⟩ / (L(θ) − L(θ − η p)) → 1 as η → 0 (the gradient is of the loss V3 evaluates)
    from learning.evaluation import counterfactual_losses, validation_gradient

    model, loss, X, y = _task(risk_digits, "mlp", torch.float64)
    theta = flat_params(model)
    grad = validation_gradient(model, loss, theta, X, y)
    noise = torch.randn(grad.shape, generator=torch.Generator().manual_seed(2), dtype=grad.dtype)
    pieces = torch.stack([grad, grad + 0.5 * grad.norm() * noise / noise.norm()])
    errors = []
    for lr in (1e-1, 1e-2, 1e-3):
        base, _, losses = counterfactual_losses(model, loss, theta, pieces, lr, X, y)
        ratio = (base - losses) / (lr * pieces @ grad)
        errors.append(float((ratio - 1).abs().max()))
    assert errors[-1] < 1e-2 and errors[-1] < errors[0] / 20


def test_validation_gradient_when_a_class_is_missing_from_the_rows(risk_digits):
    from learning.evaluation import ValidationGradient

    model, loss, X, y = _task(risk_digits, "mlp")
    keep = y != 9  # the last class never occurs: the one-hot targets still span the model's 10 outputs
    got = ValidationGradient(model, loss, X[keep], y[keep])(flat_params(model))
    loss(model(X[keep]), y[keep]).backward()
    assert torch.allclose(got, torch.cat([p.grad.reshape(-1) for p in model.parameters()]), atol=1e-6)


def _factored_step(model, loss, X, y, sizes, seed=0):
    """Factors of one virtual batch drawn from (X, y), ``sizes`` rows per member."""
    from learning.traversal import member_gradient_factors

    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(X), generator=g)[: sum(sizes)]
    batches, start = [], 0
    for k in sizes:
        batches.append((X[idx[start:start + k]], y[idx[start:start + k]]))
        start += k
    factors, _ = member_gradient_factors(model, loss, batches)
    return factors


@pytest.mark.parametrize("model_name", ["logreg", "mlp", "multitask", "no-bias"])
def test_counterfactual_losses_from_the_factored_first_layer_equal_the_dense_ones(risk_digits, model_name):
    # (W − η s_i Δ_iᵀA_i) Xᵀ = W Xᵀ − η s_i Δ_iᵀ(A_i Xᵀ): the low-rank first layer gives V3's losses to
    # float32 rounding (1e-6 on losses of order 1), for scaled, zeroed and empty members, in one call
    # and in chunks of two candidates
    from learning.evaluation import counterfactual_losses

    if model_name == "no-bias":
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 32, bias=False), torch.nn.ReLU(), torch.nn.Linear(32, 10))
        _, loss, X, y = _task(risk_digits, "mlp")
    else:
        model, loss, X, y = _task(risk_digits, model_name)
    sizes = [5, 0, 3, 1, 7, 2]
    factors = _factored_step(model, loss, X, y, sizes)
    scales = np.array([1.0, 1.0, 0.0, 0.37, 1.0, 2.5])  # member 2 excluded by the guard, 3 clipped
    pieces = factors.pieces() * torch.from_numpy(scales).float()[:, None]
    theta = flat_params(model)
    for max_entries in (1 << 25, 2 * theta.numel()):
        want = counterfactual_losses(model, loss, theta, pieces, 0.4, X, y, max_entries=max_entries)
        got = counterfactual_losses(model, loss, theta, pieces, 0.4, X, y, max_entries=max_entries,
                                    factors=factors, scales=scales)
        assert got[1].tolist() == want[1].tolist() == [0, 3, 4, 5]  # empty and zeroed members: no candidate
        assert got[0] == pytest.approx(want[0], abs=1e-6)
        assert torch.allclose(got[2], want[2], atol=1e-6)
        assert not torch.allclose(want[2], torch.full_like(want[2], want[0]), atol=1e-4)  # the steps matter
    assert torch.equal(flat_params(model), theta)


def test_factored_first_layer_is_skipped_where_it_does_not_apply(risk_digits):
    # a CNN (no stacked forward) and a model whose first op is not a Linear take the dense path
    from learning import evaluation
    from learning.evaluation import counterfactual_losses

    torch.manual_seed(0)
    tanh_first = torch.nn.Sequential(torch.nn.Tanh(), torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    cnn, loss, X, y = _task(risk_digits, "cnn")
    for model in (cnn, tanh_first):
        factors = _factored_step(model, loss, X, y, [4, 4])
        pieces = factors.pieces()
        theta = flat_params(model)
        assert evaluation._stacked_plan(model) is None or not isinstance(
            evaluation._stacked_plan(model).trunk[0], evaluation._Linear)
        want = counterfactual_losses(model, loss, theta, pieces, 0.3, X, y)
        got = counterfactual_losses(model, loss, theta, pieces, 0.3, X, y, factors=factors, scales=np.ones(2))
        assert torch.equal(got[2], want[2]) and got[0] == want[0]
