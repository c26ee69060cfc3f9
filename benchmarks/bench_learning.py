"""Learning-layer speed targets, measured in one run (issue 2):

- TL step time / centralised step time at 20 members (goal ≤ 1.3), for an MLP, a wider MLP and a
  CNN: both include assembling the virtual batch from the members' rows. "TL" is the trainer's step
  as training runs it without a credit hook (the 20 pieces are kept factored, see
  :class:`learning.traversal.GradientFactors`, and never built as a dense (20, D) matrix); the
  context row "dense pieces" also reads ``record.raw`` every step, which materialises the exact
  dense pieces (what a credit hook such as the sim's pays).
- batched evaluation of 20 candidate parameter vectors / 20 sequential evaluations for the MLP
  (goal ≤ 0.3): the V3 hot path, validation loss on the digits validation split; the same ratio on
  one torch thread (the CLI's default) as context.

Run: ``python benchmarks/bench_learning.py`` (about a minute; ``--quick``: 3 repeats instead of 15).
"""

from __future__ import annotations

import statistics
import sys
import time

from goals import Goal, report

SCRIPT = "bench_learning.py"

#: (label, model, batch size, hidden layers)
MODELS = (
    ("MLP 64-128-10, batch 64", "mlp", 64, (128,)),
    ("MLP 64-512-512-10, batch 256", "mlp", 256, (512, 512)),
    ("CNN, batch 64", "cnn", 64, (128,)),
)


def _interleaved_medians(fns, repeats: int, block: int) -> list[float]:
    """Median seconds per call of each function, timed in alternating blocks of ``block`` calls (so a
    slow spell of the machine hits every function alike)."""
    for fn in fns:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, samples, strict=True):
            t = time.perf_counter()
            for _ in range(block):
                fn()
            out.append((time.perf_counter() - t) / block)
    return [statistics.median(s) for s in samples]


def step_ratio(model_name: str, batch_size: int, hidden: tuple[int, ...], repeats: int) -> tuple[float, float, float]:
    """(TL µs, TL with dense pieces µs, centralised µs) per step."""
    import torch

    from learning.data import load_dataset, split
    from learning.models import build_model
    from learning.partition import partition
    from learning.substrates import CentralisedTrainer, TraversalTrainer, member_tensors
    from learning.traversal import gather

    splits = split(load_dataset("digits"), seed=0)
    parts = partition(splits.train.y, 20, "uni", seed=0)
    members = member_tensors([splits.train.subset(p) for p in parts])
    make = lambda: build_model(model_name, 64, 10, seed=0, hidden=hidden, image_shape=(1, 8, 8))  # noqa: E731
    tl = TraversalTrainer(make(), config={"batch_size": batch_size, "lr": 0.05}, seed=0)
    ce = CentralisedTrainer(make(), config={"batch_size": batch_size, "lr": 0.05}, seed=0)
    batches = tl.plan(members).batches(0)

    def tl_epoch():
        for b in batches:
            tl.step(gather(members, b))

    def tl_dense_epoch():
        for b in batches:
            tl.step(gather(members, b)).raw  # noqa: B018  (materialises the (20, D) pieces)

    def ce_epoch():
        for b in batches:
            parts_ = gather(members, b)
            ce.step(torch.cat([p[0] for p in parts_]), torch.cat([p[1] for p in parts_]))

    # epochs of the three timed in turn, so a slow spell of the machine hits each alike (timed one after
    # another, the ratio of the CNN's steps moved between 1.06 and 1.39 from run to run)
    t_tl, t_dense, t_ce = (t / len(batches) for t in _interleaved_medians((tl_epoch, tl_dense_epoch, ce_epoch),
                                                                          repeats, block=1))
    return t_tl * 1e6, t_dense * 1e6, t_ce * 1e6


def eval_ratio(repeats: int) -> tuple[float, float, float]:
    """(batched ms, sequential ms, batched / sequential) for 20 candidates, MLP, digits validation split."""
    import torch
    import torch.nn.functional as F

    from learning.data import load_dataset, split
    from learning.evaluation import batched_loss
    from learning.models import build_model
    from learning.params import flat_params, set_flat_params
    from learning.substrates.common import dataset_tensors

    splits = split(load_dataset("digits"), seed=0)
    X, y = dataset_tensors(splits.val)
    model = build_model("mlp", 64, 10, seed=0)
    theta = flat_params(model)
    candidates = theta + 0.01 * torch.randn(20, theta.numel(), generator=torch.Generator().manual_seed(0))

    def sequential():
        for p in candidates:
            set_flat_params(model, p)
            with torch.no_grad():
                F.cross_entropy(model(X), y)
        set_flat_params(model, theta)

    t_batch, t_seq = _interleaved_medians(
        (lambda: batched_loss(model, F.cross_entropy, candidates, X, y), sequential), 4 * repeats, block=1
    )
    return t_batch * 1e3, t_seq * 1e3, t_batch / t_seq


def goals(quick: bool = False) -> list[Goal]:
    import torch

    repeats = 3 if quick else 15
    threads = torch.get_num_threads()
    out = []
    for label, model, bs, hidden in MODELS:
        t_tl, t_dense, t_ce = step_ratio(model, bs, hidden, repeats)
        out.append(
            Goal(
                SCRIPT,
                f"TL step / centralised step, 20 members, digits, {label}",
                t_tl / t_ce,
                "×",
                1.3,
                note=f"TL (pieces factored) {t_tl:.0f} µs, centralised {t_ce:.0f} µs per step, {threads} threads",
            )
        )
        out.append(
            Goal(
                SCRIPT,
                f"  the same, building the dense (20 × D) pieces every step, {label}",
                t_dense / t_ce,
                "×",
                note=f"TL+pieces {t_dense:.0f} µs per step",
            )
        )
    t_b, t_s, r = eval_ratio(repeats)
    out.append(
        Goal(
            SCRIPT,
            "batched evaluation of 20 candidates / 20 sequential, MLP, digits validation split",
            r,
            "×",
            0.3,
            note=f"batched {t_b:.2f} ms, sequential {t_s:.2f} ms, {threads} threads",
        )
    )
    if threads > 1:  # the CLI's default (--threads 1): the batched GEMMs lose the second core, the loop little
        torch.set_num_threads(1)
        try:
            t_b, t_s, r = eval_ratio(repeats)
        finally:
            torch.set_num_threads(threads)
        out.append(
            Goal(
                SCRIPT,
                "  the same on 1 thread",
                r,
                "×",
                note=f"batched {t_b:.2f} ms, sequential {t_s:.2f} ms",
            )
        )
    return out


if __name__ == "__main__":
    report(goals("--quick" in sys.argv))
