"""A model factory: ``(n_features, n_classes) -> torch.nn.Module``.

Traversal learning is exact only for models whose per-member gradients sum to the batch gradient:
no layer may mix the rows of a batch (batch normalisation does; layer normalisation does not).
"""

from __future__ import annotations

from torch import nn


def make_net(n_features: int, n_classes: int) -> nn.Module:
    """A two-layer network with layer normalisation (row-wise, so TL stays exact)."""
    return nn.Sequential(
        nn.Linear(n_features, 32),
        nn.LayerNorm(32),
        nn.GELU(),
        nn.Linear(32, n_classes),
    )
