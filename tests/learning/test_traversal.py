"""Exactness of the explicit gradient paths (SPEC §1) and the virtual-batch plan."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from coopsim.errors import InputError
from learning.models import MultiTaskLoss, build_model
from learning.substrates import member_tensors
from learning.traversal import VirtualBatchPlan, batch_gradient, gather, grouped_supported, member_gradients

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("model_name", ["logreg", "mlp", "cnn"])
@pytest.mark.parametrize("engine", ["grouped", "vmap", "loop"])
def test_pieces_sum_to_the_centralised_gradient(cla_members, small_batches, model_name, engine, dtype):
    """digits split ``cla`` among 10 members: Σ_i g_i equals the centralised gradient of the batch."""
    model = build_model(model_name, 64, 10, seed=0, image_shape=(1, 8, 8), dtype=dtype)
    batches = small_batches(cla_members, rows=7, dtype=dtype)
    pieces = member_gradients(model, F.cross_entropy, batches, engine=engine)
    X = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    g = batch_gradient(model, F.cross_entropy, X, y)
    assert pieces.shape == (10, g.numel())
    assert (pieces.sum(0) - g).abs().max().item() <= TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_engines_agree_piece_by_piece(cla_members, small_batches, dtype):
    model = build_model("cnn", 64, 10, seed=1, image_shape=(1, 8, 8), dtype=dtype)
    batches = small_batches(cla_members, rows=5, dtype=dtype)
    ref = member_gradients(model, F.cross_entropy, batches, engine="loop")
    for engine in ("grouped", "vmap"):
        got = member_gradients(model, F.cross_entropy, batches, engine=engine)
        assert (got - ref).abs().max().item() <= TOL[dtype]


def test_multitask_pieces_are_exact(risk_digits):
    model = build_model("multitask", 64, 10, seed=0, task_classes={"risk": 2}, dtype=torch.float64)
    data = risk_digits.train
    members = member_tensors([data.subset(np.arange(i * 20, i * 20 + 20)) for i in range(6)], torch.float64)
    loss = MultiTaskLoss(("digit", "risk"))
    pieces = member_gradients(model, loss, members)
    X = torch.cat([m[0] for m in members])
    y = torch.cat([m[1] for m in members])
    assert (pieces.sum(0) - batch_gradient(model, loss, X, y)).abs().max().item() <= 1e-10
    # per-task pieces add up to the multi-task pieces (the paths a rule filter separates)
    per_task = sum(member_gradients(model, loss.only(t), members) for t in loss.tasks)
    assert (per_task - pieces).abs().max().item() <= 1e-10


def test_member_with_no_rows_gets_a_zero_piece(cla_members, small_batches):
    model = build_model("mlp", 64, 10, seed=0)
    batches = small_batches(cla_members, rows=4)
    batches[2] = (batches[2][0][:0], batches[2][1][:0])
    pieces = member_gradients(model, F.cross_entropy, batches)
    assert torch.count_nonzero(pieces[2]) == 0 and torch.count_nonzero(pieces[3]) > 0


def test_plan_covers_every_row_once_grouped_by_member():
    sizes = [5, 0, 17, 9]
    plan = VirtualBatchPlan(sizes, 8, seed=3)
    batches = plan.batches(0)
    assert len(batches) == plan.n_batches == 4
    for i, n in enumerate(sizes):
        rows = np.concatenate([b.index[i] for b in batches])
        assert sorted(rows.tolist()) == list(range(n))
    assert [b.size for b in batches] == [8, 8, 8, 7]


def test_plan_reshuffles_per_epoch_or_stays_fixed():
    sizes = [30, 30]
    moving = VirtualBatchPlan(sizes, 10, seed=1)
    fixed = VirtualBatchPlan(sizes, 10, seed=1, reshuffle=False)
    same = lambda a, b: all(  # noqa: E731
        np.array_equal(x, y) for p, q in zip(a, b, strict=True) for x, y in zip(p.index, q.index, strict=True))
    assert not same(moving.batches(0), moving.batches(1))
    assert same(fixed.batches(0), fixed.batches(5))
    assert same(moving.batches(2), VirtualBatchPlan(sizes, 10, seed=1).batches(2))


def test_gather_returns_each_members_rows(cla_members):
    plan = VirtualBatchPlan([len(m[1]) for m in cla_members], 32, seed=0)
    batch = plan.batches(0)[0]
    parts = gather(cla_members, batch)
    for (X, _), (Xi, _), ix in zip(cla_members, parts, batch.index, strict=True):
        assert torch.equal(Xi, X[torch.from_numpy(ix)])


def test_mismatched_batches_name_the_member(cla_members, small_batches):
    model = build_model("mlp", 64, 10, seed=0)
    batches = small_batches(cla_members, rows=4)
    batches[3] = (batches[3][0][:, :10], batches[3][1])
    with pytest.raises(InputError, match=r"member_batches\[3\]"):
        member_gradients(model, F.cross_entropy, batches)
    batches = small_batches(cla_members, rows=4)
    batches[1] = (batches[1][0], batches[1][1][:2])
    with pytest.raises(InputError, match=r"member_batches\[1\]"):
        member_gradients(model, F.cross_entropy, batches)
    with pytest.raises(InputError, match="engine"):
        member_gradients(model, F.cross_entropy, small_batches(cla_members), engine="magic")
    with pytest.raises(InputError, match="batch_size"):
        VirtualBatchPlan([3, 4], 0, seed=0)


class _Tied(torch.nn.Module):
    """Two Linear layers sharing one weight matrix."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


class _FunctionalInplace(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

    def forward(self, x):
        return self.b(F.relu(self.a(x), inplace=True))


@pytest.mark.parametrize("build", [
    lambda: torch.nn.Sequential(torch.nn.Linear(4, 7), torch.nn.ReLU(inplace=True), torch.nn.Linear(7, 4)),
    _Tied,
])
def test_auto_engine_stays_exact_for_inplace_layers_and_tied_weights(build):
    """In-place activations overwrite the layer outputs the grouped engine reads, and tied weights
    get one piece per use: ``auto`` must not pick it, so the pieces stay exact (float64, 1e-12)."""
    torch.manual_seed(0)
    model = build().double()
    X = torch.randn(12, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 4, (12,), generator=torch.Generator().manual_seed(2))
    assert not grouped_supported(model)
    pieces = member_gradients(model, F.cross_entropy, [(X[:5], y[:5]), (X[5:], y[5:])])
    model.zero_grad()
    F.cross_entropy(model(X), y).backward()
    full = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert (pieces.sum(0) - full).abs().max().item() <= 1e-12


def test_grouped_engine_refuses_an_output_modified_in_place():
    model = _FunctionalInplace()
    X, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    with pytest.raises(InputError, match="in place"):
        member_gradients(model, F.cross_entropy, [(X[:2], y[:2]), (X[2:], y[2:])], engine="grouped")


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"batch_size": 64, "drop_last": True}, "batch_size"),  # 30 rows: drop_last would leave no batch
    ({"batch_size": 8, "seed": -1}, "seed"),
])
def test_plan_refuses_settings_that_leave_nothing_to_train(kwargs, field):
    kwargs = {"seed": 0, **kwargs}
    with pytest.raises(InputError) as err:
        VirtualBatchPlan([10, 20], **kwargs)
    assert err.value.field == field


def test_every_engine_reports_the_loss_in_the_models_dtype(cla_members, small_batches):
    from learning.traversal import member_gradients_and_loss

    model = build_model("mlp", 64, 10, seed=0, dtype=torch.float64)
    batch = small_batches(cla_members, dtype=torch.float64)
    losses = [member_gradients_and_loss(model, F.cross_entropy, batch, engine=e)[1]
              for e in ("grouped", "vmap", "loop")]
    assert all(loss.dtype == torch.float64 for loss in losses)
    assert max(abs(float(loss - losses[0])) for loss in losses) <= 1e-12
