"""The models' names (no torch): what a configuration may name as ``training.model``.

Kept apart from :mod:`learning.models` so that a configuration validates a model name without
loading torch (surrogate runs never import it).
"""

from __future__ import annotations

#: the built-in models; any other name must be a ``"module:function"`` path to a model factory
MODELS = ("logreg", "mlp", "cnn", "multitask")
#: the scenario field a model name comes from (named in every error about a user's model)
MODEL_FIELD = "training.model"
_FACTORY = "a 'module:function' path to a factory (n_features, n_classes) -> torch.nn.Module"


def is_model_factory(name: object) -> bool:
    """Whether ``name`` names a user's model factory (a ``"module:function"`` path), not a built-in."""
    return isinstance(name, str) and name not in MODELS and ":" in name
