"""A user's own model (``build_model("module:function", …)``) and the TL exactness check.

Factories are written as modules into ``tmp_path`` (a new module name per test, so nothing is served
from the import cache). The per-member identity is checked with the tolerance of
:func:`learning.exactness.check_traversable`: |Σ_i g_i − g| ≤ 1e-5 · max(1, ‖g‖∞) + 1e-4 · |g|.
"""

import itertools
import textwrap

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coopsim.errors import InputError
from learning.evaluation import batched_accuracy, batched_loss, loss_value
from learning.exactness import ATOL, RTOL, check_traversable
from learning.models import (
    MODELS,
    MultiTaskLoss,
    build_model,
    cut_sequence,
    default_loss,
    is_model_factory,
)
from learning.params import ParamLayout, flat_params, set_flat_params
from learning.substrates import FedAvgTrainer, TraversalTrainer
from learning.traversal import batch_gradient, grouped_supported, member_gradients

_COUNT = itertools.count()

LAYERNORM = """
from torch import nn

def make(n_features, n_classes):
    return nn.Sequential(nn.Linear(n_features, 32), nn.LayerNorm(32), nn.Tanh(), nn.Linear(32, n_classes))
"""

TWO_LINEAR = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, d, k):
        super().__init__()
        self.hidden = nn.Linear(d, 24)
        self.out = nn.Linear(24, k)

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))

def make(n_features, n_classes):
    return Net(n_features, n_classes)
"""

GOOD = {"layernorm": LAYERNORM, "two_linear": TWO_LINEAR}


@pytest.fixture
def factory(tmp_path, monkeypatch):
    """A function: write ``source`` as a fresh module and return ``"module:attr"``."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str, attr: str = "make") -> str:
        name = f"user_nets_{next(_COUNT)}_{abs(hash(str(tmp_path))) % 10**8}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        return f"{name}:{attr}"

    return write


def _tol(full):
    return ATOL * max(1.0, float(full.abs().max())) + RTOL * full.abs()


# ------------------------------------------------------------------------------ building
def test_is_model_factory():
    assert is_model_factory("my_pkg.nets:make_net")
    assert not any(is_model_factory(m) for m in MODELS)
    assert not is_model_factory("resnet") and not is_model_factory(None)


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_same_seed_same_params_global_rng_untouched(factory, kind):
    path = factory(GOOD[kind])
    state = torch.get_rng_state()
    a = flat_params(build_model(path, 64, 10, seed=5))
    b = flat_params(build_model(path, 64, 10, seed=5))
    c = flat_params(build_model(path, 64, 10, seed=6))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_dtype_and_default_loss(factory):
    model = build_model(factory(LAYERNORM), 64, 10, seed=0, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert default_loss(model) is F.cross_entropy


BAD = {
    "not_callable": ("make = 3\n", ["not callable", "int"]),
    "raises": ("def make(d, k):\n    raise ValueError('no such width')\n",
               ["ValueError", "no such width", "make(64, 10)"]),
    "not_module": ("def make(d, k):\n    return [d, k]\n", ["returned a list", "not an nn.Module"]),
    "returns_none": ("def make(d, k):\n    return None\n", ["returned None"]),
    "no_params": ("from torch import nn\ndef make(d, k):\n    return nn.ReLU()\n", ["trainable parameters", "ReLU"]),
    "frozen": ("from torch import nn\ndef make(d, k):\n    m = nn.Sequential(nn.Linear(d, k))\n"
               "    m[0].bias.requires_grad_(False)\n    return m\n", ["all trainable", "0.bias"]),
    "forward_raises": ("from torch import nn\ndef make(d, k):\n    return nn.Linear(d + 1, k)\n",
                       ["forward pass", "RuntimeError", "(2, 64)"]),
    "wrong_shape": ("from torch import nn\ndef make(d, k):\n    return nn.Linear(d, 7)\n",
                    ["n_classes=10 logits per row", "got shape (2, 7)"]),
    "dict_output": ("import torch\nfrom torch import nn\nclass M(nn.Module):\n"
                    "    def __init__(self):\n        super().__init__()\n        self.l = nn.Linear(64, 10)\n"
                    "    def forward(self, x):\n        return {'a': self.l(x)}\n"
                    "def make(d, k):\n    return M()\n", ["n_classes=10 logits per row", "got a dict"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_factories_are_refused(factory, case):
    source, phrases = BAD[case]
    path = factory(source)
    with pytest.raises(InputError) as err:
        build_model(path, 64, 10, seed=0)
    assert err.value.field == "training.model" and err.value.value == path
    for phrase in phrases:
        assert phrase in str(err.value), (phrase, str(err.value))


def test_missing_module_or_attribute(factory):
    with pytest.raises(InputError, match="no module named") as err:
        build_model("no_such_module_xyz:make", 64, 10, seed=0)
    assert err.value.field == "training.model"
    path = factory(LAYERNORM, attr="nope")
    with pytest.raises(InputError, match="has no 'nope'"):
        build_model(path, 64, 10, seed=0)


def test_unknown_builtin_names_the_factory_option():
    with pytest.raises(InputError, match="module:function") as err:
        build_model("resnet", 64, 10, seed=0)
    assert err.value.field == "training.model"


def test_probe_leaves_running_stats(factory):
    path = factory("from torch import nn\ndef make(d, k):\n"
                   "    return nn.Sequential(nn.Linear(d, 8), nn.BatchNorm1d(8), nn.Linear(8, k))\n")
    model = build_model(path, 64, 10, seed=0)  # building is fine; TL is refused by check_traversable
    bn = model[1]
    assert torch.equal(bn.running_mean, torch.zeros(8)) and int(bn.num_batches_tracked) == 0


# ------------------------------------------------------------------------------ exactness
@pytest.mark.parametrize("kind", sorted(GOOD))
def test_per_member_identity_holds(factory, cla_members, small_batches, kind):
    model = build_model(factory(GOOD[kind]), 64, 10, seed=0)
    batches = small_batches(cla_members, rows=5)
    X = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    full = batch_gradient(model, F.cross_entropy, X, y)
    for engine in ("auto", "vmap", "loop"):
        pieces = member_gradients(model, F.cross_entropy, batches, engine=engine)
        assert pieces.shape == (len(batches), ParamLayout.of(model).size)
        assert ((pieces.sum(0) - full).abs() <= _tol(full)).all(), engine
    report = check_traversable(model, None, X, y, name=kind)
    assert report.engine == ("grouped" if kind == "two_linear" else "vmap")
    assert report.max_abs_error <= ATOL


@pytest.mark.parametrize("name", MODELS)
def test_builtins_pass(digits, risk_digits, name):
    from learning.substrates.common import dataset_tensors

    data = risk_digits.val if name == "multitask" else digits.val
    X, Y = dataset_tensors(data)
    model = build_model(name, 64, 10, seed=0, image_shape=(1, 8, 8), task_classes=data.task_classes or None)
    loss = default_loss(model)
    assert isinstance(loss, MultiTaskLoss) == (name == "multitask")
    report = check_traversable(model, loss, X, Y)
    assert report.engine == "grouped" and report.max_abs_error <= ATOL


WRAPPED = """
from torch import nn

class Wrapped(nn.Module):
    def __init__(self, d, k):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, 16), {layer}, nn.ReLU(), nn.Linear(16, k))

    def forward(self, x):
        return self.net(x)

def make(n_features, n_classes):
    return Wrapped(n_features, n_classes)
"""


@pytest.mark.parametrize(("layer", "cls", "phrase"), [
    ("nn.BatchNorm1d(16)", "BatchNorm1d", "mixes rows of a batch"),
    ("nn.Dropout(0.5)", "Dropout", "different outputs on two identical forward passes"),
])
def test_row_mixing_and_random_layers_refused(factory, digits, layer, cls, phrase):
    from learning.substrates.common import dataset_tensors

    X, y = dataset_tensors(digits.val)
    path = factory(WRAPPED.format(layer=layer))
    model = build_model(path, 64, 10, seed=0)
    buffers = {k: b.clone() for k, b in model.named_buffers()}
    state = torch.get_rng_state()
    with pytest.raises(InputError) as err:
        check_traversable(model, None, X, y, name=path)
    msg = str(err.value)
    assert err.value.field == "training.model" and err.value.value == path
    assert f"layer 'net.1' ({cls})" in msg and phrase in msg and "TL is exact only then" in msg
    if cls == "BatchNorm1d":
        assert "LayerNorm or GroupNorm" in msg
    # the check leaves the model and the global RNG as they were
    assert all(torch.equal(b, buffers[k]) for k, b in model.named_buffers())
    assert torch.equal(torch.get_rng_state(), state)


def test_mixing_in_the_models_own_forward_is_named(factory, digits):
    from learning.substrates.common import dataset_tensors

    X, y = dataset_tensors(digits.val)
    path = factory("""
        from torch import nn

        class Centred(nn.Module):
            def __init__(self, d, k):
                super().__init__()
                self.a, self.b = nn.Linear(d, 16), nn.Linear(16, k)

            def forward(self, x):
                h = self.a(x)
                return self.b(h - h.mean(0))  # subtracts the batch mean: mixes rows

        def make(n_features, n_classes):
            return Centred(n_features, n_classes)
        """)
    with pytest.raises(InputError, match=r"the model's own forward \(Centred\) mixes rows"):
        check_traversable(build_model(path, 64, 10, seed=0), None, X, y)


def test_deviation_is_reported(digits):
    """A sum-reduced loss breaks the identity on the vmap path (the per-row loss is a mean)."""
    from learning.substrates.common import dataset_tensors

    X, y = dataset_tensors(digits.val)
    model = nn.Sequential(nn.Linear(64, 10))

    def summed(out, t):
        return F.cross_entropy(out, t, reduction="sum")

    with pytest.raises(InputError, match="sum to a gradient that differs from the batch gradient"):
        check_traversable(model, summed, X, y, engine="vmap")


def test_shared_layer_falls_back_to_vmap(factory, cla_members, digits):
    from learning.substrates.common import dataset_tensors

    path = factory("""
        from torch import nn

        class Twice(nn.Module):
            def __init__(self, d, k):
                super().__init__()
                self.inp, self.mid, self.out = nn.Linear(d, 16), nn.Linear(16, 16), nn.Linear(16, k)

            def forward(self, x):
                h = self.mid(self.inp(x).tanh()).tanh()
                return self.out(self.mid(h).tanh())  # self.mid called twice: tied weights

        def make(n_features, n_classes):
            return Twice(n_features, n_classes)
        """)
    model = build_model(path, 64, 10, seed=0)
    assert grouped_supported(model)  # structurally it looks fine ...
    X, y = dataset_tensors(digits.val)
    report = check_traversable(model, None, X, y)
    assert report.engine == "vmap" and not grouped_supported(model)  # ... the forward pass says otherwise
    trainer = TraversalTrainer(model, config={"lr": 0.1, "batch_size": 32}, seed=0)
    trainer.fit_epoch(cla_members, max_steps=2)


# ------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize("kind", sorted(GOOD))
def test_tl_trains_and_loss_falls(factory, cla_members, digits, kind):
    from learning.substrates.common import dataset_tensors

    model = build_model(factory(GOOD[kind]), 64, 10, seed=0)
    X_val, y_val = dataset_tensors(digits.val)
    check_traversable(model, None, X_val, y_val)
    X = torch.cat([m[0] for m in cla_members])
    y = torch.cat([m[1] for m in cla_members])
    before = loss_value(model, F.cross_entropy, X, y)
    trainer = TraversalTrainer(model, config={"lr": 0.1, "batch_size": 64}, seed=0)
    seen = []
    losses = trainer.fit(cla_members, 2, callback=seen.append)
    after = loss_value(model, F.cross_entropy, X, y)
    assert losses[-1] < losses[0] and after < before - 0.3
    # the credit hook's pieces are the exact step: θ^{t+1} = θ^t − η Σ_i g_i
    rec, nxt = seen[-2], seen[-1]
    assert rec.raw.shape == (len(cla_members), ParamLayout.of(model).size)
    assert torch.allclose(rec.theta - 0.1 * rec.raw.sum(0), nxt.theta, atol=1e-6)


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_fedavg_evaluation_and_params(factory, cla_members, digits, kind):
    from learning.substrates.common import dataset_tensors

    model = build_model(factory(GOOD[kind]), 64, 10, seed=0)
    layout = ParamLayout.of(model)
    theta = flat_params(model)
    assert theta.shape == (layout.size,) == (sum(p.numel() for p in model.parameters()),)
    set_flat_params(model, theta * 2)
    assert torch.equal(flat_params(model), theta * 2)
    set_flat_params(model, theta)

    fed = FedAvgTrainer(model, config={"local_epochs": 1, "batch_size": 32, "lr": 0.1}, seed=0)
    rec = fed.round(cla_members, 0)
    assert rec.updates.shape == (len(cla_members), layout.size) and torch.isfinite(rec.updates).all()
    assert not torch.equal(flat_params(model), theta)

    X, y = dataset_tensors(digits.val)
    cands = torch.stack([theta, flat_params(model)])
    expect = []
    for p in cands:
        set_flat_params(model, p)
        expect.append(loss_value(model, F.cross_entropy, X, y))
    for method in ("auto", "vmap", "loop"):
        got = batched_loss(model, F.cross_entropy, cands, X, y, method=method)
        assert np.allclose(got.numpy(), expect, atol=1e-5), method
    acc = batched_accuracy(model, cands, X, y)
    assert acc.shape == (2,) and acc[1] > acc[0]


def test_split_mode_needs_a_sequential(factory):
    seq = build_model(factory(LAYERNORM), 64, 10, seed=0)
    assert cut_sequence(seq) is seq
    TraversalTrainer(seq, config={"cut_layer": 2}, seed=0)
    custom = build_model(factory(TWO_LINEAR), 64, 10, seed=0)
    with pytest.raises(InputError, match=r"nn\.Sequential") as err:
        TraversalTrainer(custom, config={"cut_layer": 1}, seed=0)
    assert err.value.field == "cut_layer"
