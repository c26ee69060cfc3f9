"""coopsim: a sandbox for reward mechanisms in AI cooperatives.

The project is split in layers: ``learning`` (data, models, traversal learning,
value filters), ``economics`` (valuation, settlement, mechanisms, contracts, metrics), ``sim``
(the Mesa model) and ``scenarios`` (CLI, scenario files, sweeps, figures). This small package holds
what every layer shares: the version and the input-error type.
"""

from coopsim.errors import InputError

__version__ = "0.4.0"
__all__ = ["InputError", "__version__"]
