"""Where real training runs: ``training.device`` resolved to a ``torch.device``.

``"auto"`` is CUDA when torch sees a CUDA device, else the CPU; ``"cpu"`` and ``"cuda"`` ask for one.
Everything else in ``learning/`` follows the device of the tensors it is given (the model's
parameters, the data): a trainer, an evaluation or a value filter makes its own tensors on that
device, and what leaves for ``economics/`` (numpy) goes through ``.cpu()`` first.

Random draws stay device-independent: every generator is a CPU ``torch.Generator`` (or numpy), and
what it draws is moved to the device afterwards, so the same seed draws the same initial weights,
batches, noise and free-riders' rows on either device. The arithmetic differs (other kernels, other
summation orders): a run on CUDA is not bit-identical to the same run on the CPU (docs/model.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from coopsim.errors import InputError

if TYPE_CHECKING:  # imported where a device is resolved: configs validate without loading torch
    import torch

DEVICES = ("auto", "cpu", "cuda")
FIELD = "training.device"


def cuda_available() -> bool:
    """Whether torch sees a usable CUDA device."""
    import torch

    return torch.cuda.is_available()


def resolve_device(name: str = "auto", *, field: str = FIELD) -> torch.device:
    """The ``torch.device`` for ``name`` (one of :data:`DEVICES`). ``"cuda"`` without a CUDA device,
    or any other name, is an ``InputError`` on ``field``. On CUDA, TF32 is turned off for matrix
    products and cuDNN convolutions (process-wide): with it, convolutions and products round to a
    10-bit mantissa, and TL's per-member pieces would no longer sum to the batch gradient within
    :mod:`learning.exactness`'s tolerance."""
    import torch

    if name not in DEVICES:
        raise InputError(field, name, f"one of {list(DEVICES)}: 'auto' is CUDA when torch sees one, else the CPU")
    if name == "cpu" or (name == "auto" and not cuda_available()):
        return torch.device("cpu")
    if not cuda_available():
        raise InputError(
            field,
            name,
            f"one of {list(DEVICES)} that this machine has: torch sees no CUDA device "
            f"(torch.cuda.is_available() is False, torch {torch.__version__}, built "
            f"with CUDA {torch.version.cuda or 'none'}); use 'auto' or 'cpu'",
        )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch.device("cuda")
