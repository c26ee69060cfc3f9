"""An example coopsim plug-in package: a mechanism none of the built-ins is, and a model factory.

Use it from this folder (``cd examples/plugins``): the scenario ``duel.toml`` names
``my_coop.mechanisms:AuditedRowShares`` and ``my_coop.nets:make_net``; or ``pip install -e .`` here
to register the short name ``audited_rows`` (see ``pyproject.toml``).
"""
