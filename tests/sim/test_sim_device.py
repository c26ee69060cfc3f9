"""training.device in the cooperative's real mode: "cpu" and "auto" (the CPU on a machine without CUDA)
give the same numbers as a configuration that does not name a device; "cuda" without a CUDA device is
refused naming the field; where torch sees CUDA, a short real run trains there (skipped otherwise)."""

import numpy as np
import pandas as pd
import pytest
import torch

import learning.device as device_module
from coopsim.errors import InputError
from sim import CooperativeModel

CUDA = torch.cuda.is_available()
PROFILES = [
    {"share": 0.3, "profile": {"reject_heads": ["risk"]}},
    {"share": 0.3, "profile": {"protect_classes": [3, 8], "max_norm": 1.0}},
]


def _config(device=None, substrate="tl"):
    """3 rounds, 6 principals (free-riders, random-gradient adversaries); TL with value filters on a
    multi-task model, or FedAvg (filters act on TL pieces) on an MLP."""
    tl = substrate == "tl"
    training = {
        "model": "multitask" if tl else "mlp",
        "substrate": substrate,
        "standalone_epochs": 2,
        "steps_per_round": 2,
    }
    if device is not None:
        training["device"] = device
    return {
        "rounds": 3,
        "training": training,
        "mechanism": {"kind": "revenue_shares", "alpha": 1.5},
        "population": {
            "n_principals": 6,
            "strategy": "epsilon_greedy",
            "value_profiles": PROFILES if tl else [],
            "behaviours": {"honest": 0.5, "free_rider": 0.25, "random_gradient": 0.25},
        },
    }


@pytest.fixture
def no_cuda(monkeypatch):
    """This machine as one without CUDA, whatever torch sees."""
    monkeypatch.setattr(device_module, "cuda_available", lambda: False)


@pytest.mark.parametrize("substrate", ["tl", "fedavg"])
def test_cpu_and_auto_give_the_numbers_of_a_config_without_a_device(no_cuda, substrate):
    runs = [CooperativeModel(_config(d, substrate), rng=4).run() for d in (None, "cpu", "auto")]
    frames = [r.frames() for r in runs]
    for model_df, agent_df in frames[1:]:
        pd.testing.assert_frame_equal(model_df, frames[0][0])
        pd.testing.assert_frame_equal(agent_df, frames[0][1])
    assert all(r.backend.device == torch.device("cpu") for r in runs)
    assert np.array_equal(runs[0].backend.theta, runs[2].backend.theta)


def test_the_default_device_is_auto():
    model = CooperativeModel({"training": {"mode": "surrogate"}}, rng=0)
    assert model.config.training.device == "auto"


def test_cuda_without_a_cuda_device_is_refused_naming_the_field(no_cuda):
    with pytest.raises(InputError) as err:
        CooperativeModel(_config("cuda"), rng=0)
    assert err.value.field == "training.device" and err.value.value == "cuda"
    assert "'auto' or 'cpu'" in err.value.allowed


def test_an_unknown_device_is_refused_at_validation():
    with pytest.raises(ValueError, match="device"):
        CooperativeModel(_config("tpu"), rng=0)


def test_surrogate_mode_ignores_the_device(no_cuda):
    """The surrogate has no torch model: "cuda" there is accepted and unused."""
    model = CooperativeModel({"rounds": 2, "training": {"mode": "surrogate", "device": "cuda"}}, rng=0).run()
    assert len(model.frames()[0]) == 2


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("substrate", ["tl", "fedavg"])
def test_a_short_real_run_on_cuda(substrate):
    """Trains on the GPU (model and data there), credits every member from there; starts from the
    CPU run's initial weights (drawn on the CPU), ends near the CPU run (other kernels, not bit-equal)."""
    gpu = CooperativeModel(_config("cuda", substrate), rng=4)
    cpu = CooperativeModel(_config("cpu", substrate), rng=4)
    assert next(gpu.backend.model.parameters()).device.type == "cuda"
    assert gpu.backend.X_val.device.type == "cuda"
    assert torch.equal(gpu.backend.theta0.cpu(), cpu.backend.theta0)
    gpu.run()
    cpu.run()
    model_df, agent_df = gpu.frames()
    assert len(model_df) == 3 and np.isfinite(model_df["accuracy"]).all()
    assert np.isfinite(agent_df["credit"].to_numpy(dtype=float)).all()
    assert abs(model_df["accuracy"].iloc[0] - cpu.frames()[0]["accuracy"].iloc[0]) <= 0.05
