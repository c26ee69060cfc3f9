"""Every value filter's guarantee (SPEC §2, V1)."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from coopsim.errors import InputError
from learning.filters import (
    Box,
    FilterContext,
    GradientSurgery,
    HalfSpaceProjection,
    LearnedAdmissibility,
    NormBall,
    PreferenceModel,
    RuleFilter,
    ValueProfile,
    ValueProfileSpec,
    ValueReference,
)
from learning.models import MultiTaskLoss, build_model
from learning.params import ParamLayout, flat_params
from learning.substrates import TraversalTrainer, member_tensors
from learning.traversal import batch_gradient, member_gradients


def _ctx(groups, dim=30, lr=0.1):
    layout = ParamLayout(("w",), ((dim,),), (0,))
    return FilterContext(layout, lr, {f"g{k}": a for k, a in enumerate(groups)})


@pytest.fixture(scope="module")
def multitask(risk_digits):
    model = build_model("multitask", 64, 10, seed=0, task_classes={"risk": 2}, dtype=torch.float64)
    data = risk_digits.train
    members = member_tensors([data.subset(np.arange(i * 30, i * 30 + 30)) for i in range(4)], torch.float64)
    loss = MultiTaskLoss(("digit", "risk"))
    pieces = {t: member_gradients(model, loss.only(t), members) for t in loss.tasks}
    return model, loss, members, pieces


# ------------------------------------------------------------------------------------------ rules
def test_rejected_head_receives_exactly_zero(multitask):
    model, _, _, pieces = multitask
    layout = ParamLayout.of(model)
    f = RuleFilter(["risk"])
    f.bind(layout)
    raw = pieces["digit"][0] + pieces["risk"][0]
    out = f(raw, FilterContext(layout, 0.1, {}, {t: p[0] for t, p in pieces.items()}))
    assert torch.count_nonzero(out[layout.head_mask("risk")]) == 0
    # the trunk keeps only the digit path: the component flowing from the risk head is removed
    assert torch.allclose(out, pieces["digit"][0])
    assert torch.count_nonzero(raw[layout.head_mask("risk")]) > 0


def test_neutral_trunk_is_orthogonal_to_the_rejected_path(multitask):
    model, _, _, pieces = multitask
    layout = ParamLayout.of(model)
    f = RuleFilter(["risk"], neutral_trunk=True)
    f.bind(layout)
    ctx = FilterContext(layout, 0.1, {}, {t: p[1] for t, p in pieces.items()})
    out = f(pieces["digit"][1] + pieces["risk"][1], ctx)
    trunk = layout.trunk_mask()
    dot = float(out[trunk] @ pieces["risk"][1][trunk])
    assert abs(dot) <= 1e-10 * float(out.norm() * pieces["risk"][1].norm())


def test_a_head_named_twice_is_rejected_once(multitask):
    """Naming a rejected head twice must not remove a second, arbitrary trunk direction (float32,
    where the duplicate's round-off residue is far above a fixed 1e-12 rank cut)."""
    model, _, _, pieces = multitask
    layout = ParamLayout.of(model)
    ctx = FilterContext(layout, 0.1, {}, {t: p[1].float() for t, p in pieces.items()})
    raw = (pieces["digit"][1] + pieces["risk"][1]).float()
    once, twice = RuleFilter(["risk"], neutral_trunk=True), RuleFilter(["risk", "risk"], neutral_trunk=True)
    once.bind(layout)
    twice.bind(layout)
    assert torch.allclose(once(raw, ctx), twice(raw, ctx), atol=1e-7, rtol=0)


def test_rejecting_every_direction_gives_the_zero_vector(multitask):
    model, _, _, pieces = multitask
    layout = ParamLayout.of(model)
    ctx = FilterContext(layout, 0.1, {}, {t: p[2] for t, p in pieces.items()})
    raw = pieces["digit"][2] + pieces["risk"][2]
    for f in (RuleFilter(["digit", "risk"]), RuleFilter(reject_params=["*"])):
        f.bind(layout)
        assert torch.count_nonzero(f(raw, ctx)) == 0


def test_tl_never_moves_a_head_that_every_member_rejects(multitask):
    model, loss, members, _ = multitask
    start = flat_params(model)
    layout = ParamLayout.of(model)
    profile = ValueProfile.from_spec({"reject_heads": ["risk"]}, layout, seed=0)
    trainer = TraversalTrainer(model, loss, {"lr": 0.5, "batch_size": 16}, seed=0)
    trainer.fit(members, 2, [profile] * len(members))
    moved = flat_params(model) - start
    assert torch.count_nonzero(moved[layout.head_mask("risk")]) == 0
    assert torch.count_nonzero(moved[layout.head_mask("digit")]) > 0


# ------------------------------------------------------------------------------------ projections
def test_single_half_space_projection():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(30, generator=gen, dtype=torch.float64)
    g = -a + 0.1 * torch.randn(30, generator=gen, dtype=torch.float64)
    out = HalfSpaceProjection(["g0"])(g, _ctx([a]))
    assert float(out @ a) >= -1e-12 and abs(float(out @ a)) <= 1e-10
    assert torch.allclose(out, g - (g @ a) / (a @ a) * a)
    ok = a.clone()
    assert torch.equal(HalfSpaceProjection(["g0"])(ok, _ctx([a])), ok)


@pytest.mark.parametrize("seed", range(8))
def test_several_half_spaces_give_the_closest_feasible_point(seed):
    from scipy.optimize import minimize

    rng = np.random.default_rng(seed)
    A = rng.normal(size=(3, 12))
    g = rng.normal(size=12) - A.sum(0)
    out = HalfSpaceProjection(["g0", "g1", "g2"])(torch.from_numpy(g), _ctx([torch.from_numpy(a) for a in A]))
    out = out.numpy()
    assert (A @ out >= -1e-9 * np.linalg.norm(A, axis=1) * np.linalg.norm(g)).all()
    ref = minimize(lambda x: 0.5 * np.sum((x - g) ** 2), g, jac=lambda x: x - g, method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda x, a=a: a @ x, "jac": lambda x, a=a: a} for a in A],
                   options={"ftol": 1e-14, "maxiter": 500})
    assert np.allclose(out, ref.x, atol=1e-6)


def test_norm_ball_and_box():
    g = torch.tensor([3.0, -4.0, 0.5])
    clipped = NormBall(1.0)(g, _ctx([], 3))
    assert abs(float(clipped.norm()) - 1.0) < 1e-6 and torch.allclose(clipped / clipped.norm(), g / g.norm())
    assert torch.equal(NormBall(10.0)(g, _ctx([], 3)), g)
    boxed = Box(1.0)(g, _ctx([], 3))
    assert torch.equal(boxed, torch.tensor([1.0, -1.0, 0.5]))


def test_norm_ball_keeps_half_space_constraints():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(30, generator=gen)
    g = torch.randn(30, generator=gen) * 10
    both = ValueProfile([HalfSpaceProjection(["g0"]), NormBall(0.5)])
    out = both(g, _ctx([a]))
    assert float(out @ a) >= -1e-6 and float(out.norm()) <= 0.5 + 1e-6


# ---------------------------------------------------------------------------------------- surgery
def test_gradient_surgery_removes_only_the_conflicting_component():
    gen = torch.Generator().manual_seed(2)
    a = torch.randn(30, generator=gen, dtype=torch.float64)
    g = torch.randn(30, generator=gen, dtype=torch.float64)
    g = g - 2 * (g @ a) / (a @ a) * a if g @ a > 0 else g  # make it conflict
    out = GradientSurgery(["g0"])(g, _ctx([a]))
    assert abs(float(out @ a)) <= 1e-10 and float(out.norm()) <= float(g.norm())
    agree = -g
    assert torch.equal(GradientSurgery(["g0"])(agree, _ctx([a])), agree)


# ------------------------------------------------------------------------- learned admissibility
@pytest.fixture(scope="module")
def learned():
    pref = PreferenceModel(classes=[3, 8, 1], weights=[1.0, 1.0, 0.2], veto_classes=[3], temperature=0.1)
    return pref, LearnedAdmissibility(pref, seed=0, n_pairs=3000)


def test_learned_model_agrees_with_the_principal_on_held_out_outcomes(learned):
    pref, f = learned
    rng = np.random.default_rng(99)
    outcomes = rng.normal(scale=pref.outcome_scale, size=(2000, 3))
    truth = pref.utility(outcomes) > 0  # the principal would rather apply it than do nothing
    predicted = f.probability(torch.from_numpy(outcomes)).numpy() >= 0.5
    assert (truth == predicted).mean() >= 0.9


def test_learned_filter_zeroes_an_inadmissible_update(learned):
    _, f = learned
    gen = torch.Generator().manual_seed(3)
    A = torch.randn(3, 30, generator=gen, dtype=torch.float64)
    groups = {f"class:{k}": A[i] for i, k in enumerate([3, 8, 1])}
    ctx = FilterContext(ParamLayout(("w",), ((30,),), (0,)), 0.01, groups)
    harmful = -A[0] * 5  # raises the vetoed class's loss to first order
    assert torch.count_nonzero(f(harmful, ctx)) == 0
    helpful = A.sum(0)  # lowers every group's loss
    assert torch.equal(f(helpful, ctx), helpful)
    scaled = LearnedAdmissibility(f.preference, seed=0, mode="scale")(helpful, ctx)
    s = float(scaled @ helpful / (helpful @ helpful))
    assert 0.0 <= s <= 1.0 and torch.allclose(scaled, s * helpful)


# ----------------------------------------------------------------------------- profiles and specs
def test_profile_from_spec_orders_and_binds(multitask):
    model, *_ = multitask
    layout = ParamLayout.of(model)
    spec = {"reject_heads": ["risk"], "protect_classes": [3, 8], "max_norm": 1.0}
    profile = ValueProfile.from_spec(spec, layout, seed=0, n_classes=10)
    assert [type(f).__name__ for f in profile.filters] == ["RuleFilter", "HalfSpaceProjection", "NormBall"]
    assert profile.needs_groups == ("class:3", "class:8") and profile.needs_task_pieces
    assert ValueProfile.from_spec({}, layout, seed=0).is_identity


def test_value_reference_gives_group_gradients(risk_digits):
    model = build_model("mlp", 64, 10, seed=0, dtype=torch.float64)
    X = torch.from_numpy(risk_digits.val.X).double()
    y = torch.from_numpy(risk_digits.val.y)
    ref = ValueReference.from_classes(X, y, [3, 8])
    import torch.nn.functional as F

    grads = ref.gradients(model, F.cross_entropy, ["class:3", "class:8"])
    for k in (3, 8):
        rows = y == k
        assert torch.allclose(grads[f"class:{k}"], batch_gradient(model, F.cross_entropy, X[rows], y[rows]), atol=1e-12)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"reject_heads": ["risk"], "admit_heads": ["risk"]}, "reject_heads"),
        ({"protect_classes": [3, 3]}, "protect_classes"),
        ({"admissibility": {"classes": [1], "veto_classes": [2]}}, "veto_classes"),
        ({"admissibility": {"classes": [1, 2], "weights": [1.0]}}, "weights"),
    ],
)
def test_contradictory_profiles_fail_naming_the_field(spec, field):
    with pytest.raises((InputError, ValidationError), match=field):
        ValueProfileSpec.model_validate(spec)


def test_profile_errors_against_the_model(multitask):
    model, *_ = multitask
    layout = ParamLayout.of(model)
    with pytest.raises(InputError, match="reject_heads"):
        ValueProfile.from_spec({"reject_heads": ["credit"]}, layout, seed=0)
    with pytest.raises(InputError, match="class"):
        ValueProfile.from_spec({"protect_classes": [12]}, layout, seed=0, n_classes=10)
    with pytest.raises(ValidationError, match="max_norm"):
        ValueProfileSpec.model_validate({"max_norm": -1})
    with pytest.raises(ValidationError, match="reject_everything"):
        ValueProfileSpec.model_validate({"reject_everything": True})
