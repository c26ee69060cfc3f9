"""training.device: resolving it (``learning.device``), and the learning code on the chosen device — TL's
per-member identity (the pieces sum to the centralised gradient), the trainers, value filters, the
guard and batched evaluation. Every test runs on the CPU ("cpu" and "auto", which is the CPU here);
the same tests run on CUDA where torch sees a device (skipped otherwise)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import learning.device as device_module
from coopsim.errors import InputError
from learning.device import DEVICES, resolve_device
from learning.evaluation import (
    ValidationGradient,
    batched_accuracy,
    batched_loss,
    counterfactual_losses,
    validation_gradient,
)
from learning.exactness import check_traversable
from learning.filters import ValueProfile, ValueReference
from learning.guard import guard_pieces
from learning.models import MultiTaskLoss, build_model
from learning.params import ParamLayout, flat_params
from learning.substrates import FedAvgTrainer, TraversalTrainer, member_tensors, train_standalone
from learning.substrates.centralised import CentralisedTrainer
from learning.traversal import VirtualBatchPlan, batch_gradient, factored_gradients, gather, member_gradients

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False)")
#: "cpu" and "auto" everywhere; "cuda" only where torch sees a device
DEVICE_NAMES = ["cpu", "auto", pytest.param("cuda", marks=needs_cuda)]
TOL = 1e-5  # float32, as tests/learning/test_traversal.py


def _to(batches, device):
    return [(X.to(device), y.to(device)) for X, y in batches]


# ----------------------------------------------------------------------------- resolving the name
def test_cpu_is_the_cpu_and_auto_follows_cuda_availability(monkeypatch):
    assert DEVICES == ("auto", "cpu", "cuda")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(device_module, "cuda_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")  # the default is "auto"


def test_auto_is_cuda_when_torch_sees_one(monkeypatch):
    monkeypatch.setattr(device_module, "cuda_available", lambda: True)
    # resolve_device turns TF32 off on CUDA (it would break TL's identity): restored afterwards
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        assert resolve_device("auto") == torch.device("cuda")
        assert resolve_device("cuda") == torch.device("cuda")
        assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_cuda_without_a_cuda_device_is_refused_naming_the_field(monkeypatch):
    monkeypatch.setattr(device_module, "cuda_available", lambda: False)
    with pytest.raises(InputError) as err:
        resolve_device("cuda")
    assert err.value.field == "training.device" and err.value.value == "cuda"
    assert "no CUDA device" in err.value.allowed and "'auto' or 'cpu'" in err.value.allowed
    assert str(err.value).startswith("training.device='cuda': ")


@pytest.mark.parametrize("name", ["gpu", "cuda:0", "", "CPU"])
def test_unknown_device_names_are_refused(name):
    with pytest.raises(InputError, match=r"training\.device") as err:
        resolve_device(name)
    assert "'auto'" in err.value.allowed and "'cpu'" in err.value.allowed and "'cuda'" in err.value.allowed


# ------------------------------------------------------------------------ TL's identity on the device
@pytest.mark.parametrize("name", DEVICE_NAMES)
@pytest.mark.parametrize("model_name", ["logreg", "mlp", "cnn"])
@pytest.mark.parametrize("engine", ["grouped", "vmap", "loop"])
def test_pieces_sum_to_the_centralised_gradient_on_the_device(cla_members, small_batches, name, model_name, engine):
    dev = resolve_device(name)
    model = build_model(model_name, 64, 10, seed=0, image_shape=(1, 8, 8)).to(dev)
    batches = _to(small_batches(cla_members, rows=7), dev)
    pieces = member_gradients(model, F.cross_entropy, batches, engine=engine)
    X, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    g = batch_gradient(model, F.cross_entropy, X, y)
    assert pieces.device.type == dev.type and pieces.shape == (10, g.numel())
    assert (pieces.sum(0) - g).abs().max().item() <= TOL


@pytest.mark.parametrize("name", DEVICE_NAMES)
@pytest.mark.parametrize("model_name", ["mlp", "cnn"])
def test_factored_pieces_and_the_exactness_check_on_the_device(cla_members, small_batches, name, model_name):
    dev = resolve_device(name)
    model = build_model(model_name, 64, 10, seed=2, image_shape=(1, 8, 8)).to(dev)
    batches = _to(small_batches(cla_members, rows=5), dev)
    reference = member_gradients(model, F.cross_entropy, batches, engine="loop")
    factors, _ = factored_gradients(model, F.cross_entropy, batches)
    assert (factors.pieces() - reference).abs().max().item() <= TOL
    X, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    report = check_traversable(model, F.cross_entropy, X, y)
    assert report.engine == "grouped" and report.max_abs_error <= TOL


@pytest.mark.parametrize("name", DEVICE_NAMES)
def test_multitask_pieces_are_exact_on_the_device(risk_digits, name):
    dev = resolve_device(name)
    model = build_model("multitask", 64, 10, seed=0, task_classes={"risk": 2}).to(dev)
    data = risk_digits.train
    members = _to(member_tensors([data.subset(np.arange(i * 20, i * 20 + 20)) for i in range(6)]), dev)
    loss = MultiTaskLoss(("digit", "risk"))
    pieces = member_gradients(model, loss, members)
    X, y = torch.cat([m[0] for m in members]), torch.cat([m[1] for m in members])
    assert (pieces.sum(0) - batch_gradient(model, loss, X, y)).abs().max().item() <= TOL


# ------------------------------------------------------------------------------- the trainers
def _tl_run(cla_members, dev, profiles=None, guard=None, reference=None):
    """Two TL steps of an MLP on the first 20 rows of each member, on ``dev``: the final θ (on the CPU)
    and each step's (θ, Σ filtered pieces, raw pieces) as seen by the credit hook."""
    model = build_model("mlp", 64, 10, seed=0, hidden=(16,)).to(dev)
    members = _to([(X[:20], y[:20]) for X, y in cla_members], dev)
    trainer = TraversalTrainer(
        model, F.cross_entropy, {"lr": 0.2, "batch_size": 32, "guard_ratio": guard}, seed=3, reference=reference
    )
    seen = []
    trainer.fit(members, 1, profiles, callback=lambda rec: seen.append((rec.theta, rec.filtered.sum(0), rec.raw)))
    return flat_params(model).cpu(), seen, model, members


@pytest.mark.parametrize("name", DEVICE_NAMES)
def test_tl_steps_are_centralised_sgd_on_the_device(cla_members, name):
    """Unfiltered TL on the device: each step's pieces sum to the centralised gradient at θ, and the
    run ends where centralised SGD on the same virtual batches does."""
    dev = resolve_device(name)
    theta, seen, _, members = _tl_run(cla_members, dev)
    central = build_model("mlp", 64, 10, seed=0, hidden=(16,)).to(dev)
    trainer = CentralisedTrainer(central, F.cross_entropy, {"lr": 0.2, "batch_size": 32}, seed=3)
    trainer.fit(members, 1)
    assert (flat_params(central).cpu() - theta).abs().max().item() <= TOL
    assert len(seen) == 7  # 200 rows in batches of 32
    for step_theta, total, raw in seen:
        assert step_theta.device.type == dev.type and raw.shape == (10, step_theta.numel())
        assert total.device.type == dev.type


@pytest.mark.parametrize("name", [pytest.param("cuda", marks=needs_cuda)])
def test_tl_on_cuda_follows_the_cpu_run(cla_members, name):
    """Same seed, same draws: CUDA starts from the CPU's weights and ends close to the CPU's run."""
    cpu, _, _, _ = _tl_run(cla_members, torch.device("cpu"))
    gpu, _, _, _ = _tl_run(cla_members, resolve_device(name))
    assert torch.allclose(cpu, gpu, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", DEVICE_NAMES)
def test_value_filters_and_the_guard_work_on_the_device(risk_digits, name):
    dev = resolve_device(name)
    model = build_model("multitask", 64, 10, seed=0, task_classes={"risk": 2}).to(dev)
    layout = ParamLayout.of(model)
    data = risk_digits.train
    members = _to(member_tensors([data.subset(np.arange(i * 16, i * 16 + 16)) for i in range(4)]), dev)
    Xv, yv = (t.to(dev) for t in member_tensors([risk_digits.val])[0])
    specs = [
        {"reject_heads": ["risk"], "neutral_trunk": True},
        {"protect_classes": [3, 8], "max_norm": 1.0},
        {"surgery_classes": [1], "box": 0.01},
        {},
    ]
    profiles = [ValueProfile.from_spec(s, layout, seed=i, n_classes=10) for i, s in enumerate(specs)]
    loss = MultiTaskLoss(("digit", "risk"))
    trainer = TraversalTrainer(
        model,
        loss,
        {"lr": 0.1, "batch_size": 64, "guard_ratio": 3.0},
        seed=1,
        reference=ValueReference.from_classes(Xv, yv),
    )
    records = []
    trainer.fit(members, 1, profiles, callback=records.append)
    assert records and all(r.filtered.device.type == dev.type for r in records)
    rec = records[0]
    heads = layout.head_mask("risk").to(dev)
    assert torch.count_nonzero(rec.filtered[0][heads]) == 0  # a rejected head stays exactly zero
    assert float(rec.filtered[1].norm()) <= 1.0 + 1e-6
    assert float(rec.filtered[2].abs().max()) <= 0.01 + 1e-7
    guarded = guard_pieces(
        rec.raw * torch.tensor([1.0, 1.0, 1e6, float("nan")], device=dev)[:, None],
        np.array([16, 16, 16, 16]),
        max_ratio=3.0,
    )
    assert guarded.pieces.device.type == dev.type and guarded.excluded.tolist() == [False, False, False, True]
    assert guarded.clipped[2] and torch.isfinite(guarded.pieces).all()


@pytest.mark.parametrize("name", DEVICE_NAMES)
def test_fedavg_and_standalone_training_on_the_device(cla_members, name):
    dev = resolve_device(name)
    members = _to([(X[:24], y[:24]) for X, y in cla_members[:4]], dev)
    model = build_model("mlp", 64, 10, seed=0, hidden=(16,)).to(dev)
    rec = FedAvgTrainer(model, F.cross_entropy, {"batch_size": 8, "guard_ratio": 3.0}, seed=0).round(members, 0)
    assert rec.updates.device.type == dev.type and torch.isfinite(rec.theta_after).all()
    (alone,) = train_standalone(
        lambda i: build_model("mlp", 64, 10, seed=5, hidden=(16,)).to(dev), members[:1], 2, {"batch_size": 8}, seed=0
    )
    assert next(alone.parameters()).device.type == dev.type


@pytest.mark.parametrize("name", DEVICE_NAMES)
def test_batched_evaluation_on_the_device_matches_the_cpu(digits, name):
    dev = resolve_device(name)
    cpu_model = build_model("mlp", 64, 10, seed=0, hidden=(16,))
    model = build_model("mlp", 64, 10, seed=0, hidden=(16,)).to(dev)
    X, y = member_tensors([digits.val])[0]
    theta = flat_params(cpu_model)
    pieces = torch.randn(5, theta.numel(), generator=torch.Generator().manual_seed(0)) * 0.1
    pieces[2] = 0.0
    P = theta + pieces
    ref_loss = batched_loss(cpu_model, F.cross_entropy, P, X, y)
    got = batched_loss(model, F.cross_entropy, P.to(dev), X.to(dev), y.to(dev))
    assert torch.allclose(got.cpu(), ref_loss, rtol=1e-5, atol=1e-6)
    base, rows, losses = counterfactual_losses(
        model, F.cross_entropy, theta.to(dev), pieces.to(dev), 0.5, X.to(dev), y.to(dev)
    )
    ref = counterfactual_losses(cpu_model, F.cross_entropy, theta, pieces, 0.5, X, y)
    assert rows.cpu().tolist() == ref[1].tolist() == [0, 1, 3, 4]
    assert base == pytest.approx(ref[0], rel=1e-5) and torch.allclose(losses.cpu(), ref[2], rtol=1e-5)
    grad = ValidationGradient(model, F.cross_entropy, X.to(dev), y.to(dev))(theta.to(dev))
    assert torch.allclose(grad.cpu(), validation_gradient(cpu_model, F.cross_entropy, theta, X, y), atol=1e-6)
    acc = batched_accuracy(model, P.to(dev), X.to(dev), y.to(dev))
    assert torch.equal(acc.cpu(), batched_accuracy(cpu_model, P, X, y))


def test_gather_keeps_the_members_device(cla_members):
    members = _to(cla_members[:3], resolve_device("auto"))
    plan = VirtualBatchPlan([len(m[1]) for m in members], 16, seed=0)
    parts = gather(members, plan.batches(0)[0])
    assert all(p[0].device == members[0][0].device for p in parts)
