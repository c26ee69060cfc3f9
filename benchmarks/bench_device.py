"""Real mode on the CPU and on a CUDA GPU (issue 17, goal 5): time per round of the cooperative in real
mode at 20 and at 100 members — digits, the multi-task MLP, TL with value filters (30% reject the
risk head, 20% protect classes 3 and 8 within a norm ball), exact one-step credit (V3) and α-power
revenue shares, as ``bench_sim.py``'s real run — on ``training.device = "cpu"`` and, where torch
sees one, ``"cuda"``. No goal: context for choosing the device. Each configuration is built (data,
standalone models), runs one round to warm up (CUDA kernels and cuBLAS are set up on first use),
then the clock times the next rounds (on CUDA the device is synchronised before the clock stops).
A first small model is built before anything is timed, so that no setup includes the imports.

Run from the repository root:

    python benchmarks/bench_device.py            # 10 timed rounds per configuration
    python benchmarks/bench_device.py --quick    # 3
"""

from __future__ import annotations

import sys
import time

from goals import Goal, report

SCRIPT = "bench_device.py"
SIZES = (20, 100)


def config(n: int, device: str, rounds: int) -> dict:
    return {
        "rounds": rounds,
        "training": {"model": "multitask", "device": device},
        "mechanism": {"kind": "revenue_shares", "alpha": 1.5},
        "population": {
            "n_principals": n,
            "behaviours": {"honest": 0.9, "free_rider": 0.1},
            "value_profiles": [
                {"share": 0.3, "profile": {"reject_heads": ["risk"]}},
                {"share": 0.2, "profile": {"protect_classes": [3, 8], "max_norm": 1.0}},
            ],
        },
    }


def time_rounds(n: int, device: str, rounds: int) -> tuple[float, float]:
    """Seconds to build the model (data, standalone models) and seconds per round after one warm-up."""
    import torch

    from sim import CooperativeModel

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    started = time.perf_counter()
    model = CooperativeModel(config(n, device, rounds + 1), rng=0)
    built = time.perf_counter()
    model.step()  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(rounds):
        model.step()
    sync()
    return built - started, (time.perf_counter() - start) / rounds


def goals(quick: bool = False) -> list[Goal]:
    import torch

    rounds = 3 if quick else 10
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    threads = torch.get_num_threads()
    from sim import CooperativeModel

    CooperativeModel(config(4, "cpu", 1), rng=0)  # first-use costs (imports, the dataset) out of the setups timed
    out: list[Goal] = []
    per_round: dict[tuple[int, str], float] = {}
    for n in SIZES:
        for device in devices:
            setup, seconds = time_rounds(n, device, rounds)
            per_round[n, device] = seconds
            where = f"{gpu}" if device == "cuda" else f"{threads} torch threads"
            out.append(
                Goal(
                    SCRIPT,
                    f"real round, {n} members, TL + value filters + V3 credit, {device}",
                    seconds * 1e3,
                    "ms",
                    note=f"{where}; {rounds} rounds after one warm-up; setup (data, standalone models) {setup:.1f} s",
                )
            )
        if "cuda" in devices:
            out.append(
                Goal(
                    SCRIPT,
                    f"real round, {n} members: CPU time / CUDA time",
                    per_round[n, "cpu"] / per_round[n, "cuda"],
                    "×",
                )
            )
        else:
            out.append(
                Goal(
                    SCRIPT,
                    f"real round, {n} members, cuda",
                    float("nan"),
                    "ms",
                    note="not measured: no CUDA device on this machine (torch.cuda.is_available() is "
                    f"False; torch {torch.__version__})",
                )
            )
    return out


if __name__ == "__main__":
    report(goals("--quick" in sys.argv))
