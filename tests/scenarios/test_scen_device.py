"""``cooperative.training.device = "cuda"`` on a machine without CUDA: the CLI exits 2 naming the
field, and writes nothing."""

import learning.device as device_module


def test_cuda_without_a_cuda_device_exits_2_naming_the_field(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(device_module, "cuda_available", lambda: False)
    out = tmp_path / "run"
    result = cli(
        "run",
        "free-riding",
        "--set",
        "cooperative.training.device=cuda",
        "--set",
        "replicates=1",
        "--set",
        "cooperative.rounds=2",
        "--out",
        out,
    )
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())  # the console wraps long lines
    assert "training.device='cuda'" in text and "no CUDA device" in text
    assert not out.exists()
