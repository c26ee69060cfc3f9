"""Reward mechanisms: the public API (:mod:`sim.mechanisms.base`), the built-ins written on it, and
how a scenario's ``mechanism = { kind = ..., ... }`` entry finds its class and validates its settings.

Built-ins: ``revenue_shares`` (V4–V6), ``equal_split`` and ``data_size`` (baselines), ``cgsv``
(C1–C5), ``contracts`` (P). A plug-in is named by ``"module:Class"`` or by the short name an installed
package registers in the entry-point group ``coopsim.mechanisms``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from coopsim.errors import InputError
from coopsim.plugins import GROUPS, discovered, resolve
from sim.mechanisms.base import (
    ByMember,
    Cooperative,
    Mechanism,
    MechanismSettings,
    Offer,
    Payout,
    RoundView,
    SharedModel,
    as_arrays,
    payout_of,
)
from sim.mechanisms.cgsv import CGSV, CGSVSettings
from sim.mechanisms.contracts import Contracts, ContractSettings
from sim.mechanisms.money import (
    DataSize,
    DataSizeSettings,
    EqualSplit,
    EqualSplitSettings,
    RevenueShares,
    RevenueSharesSettings,
)

#: the built-in mechanisms by their ``kind``
BUILTINS: dict[str, type[Mechanism]] = {
    "revenue_shares": RevenueShares,
    "cgsv": CGSV,
    "contracts": Contracts,
    "equal_split": EqualSplit,
    "data_size": DataSize,
}
GROUP = GROUPS["mechanism"]
DEFAULT_KIND = "revenue_shares"


def mechanism_class(kind: Any, *, field: str = "mechanism.kind") -> type[Mechanism]:
    """The class a ``kind`` names: built-in, installed plug-in or ``module:Class`` (checked to be a
    :class:`Mechanism` subclass whose ``Settings`` is a :class:`MechanismSettings` subclass)."""
    cls = resolve(kind, field=field, builtins=BUILTINS, group=GROUP)
    if not (isinstance(cls, type) and issubclass(cls, Mechanism)):
        what = f"the class {cls.__name__}" if isinstance(cls, type) else f"a {type(cls).__name__}"
        raise InputError(field, kind, f"a subclass of sim.mechanisms.Mechanism; {kind!r} is {what}")
    if not (isinstance(cls.Settings, type) and issubclass(cls.Settings, MechanismSettings)):
        raise InputError(field, kind, f"a mechanism whose Settings is a subclass of sim.mechanisms."
                                      f"MechanismSettings; {cls.__name__}.Settings is {cls.Settings!r}")
    if cls.pay is Mechanism.pay:
        raise InputError(field, kind, f"a mechanism that implements pay(view); {cls.__name__} does not")
    return cls


def settings_for(value: Any, *, field: str = "mechanism") -> MechanismSettings:
    """Validate one mechanism entry against the settings of the class its ``kind`` names (the
    discriminated union on ``kind``): the stored settings hold that mechanism's fields only."""
    if isinstance(value, MechanismSettings):
        return value
    if not isinstance(value, Mapping):
        raise InputError(field, value, "a table of settings with a `kind`, e.g. { kind = \"cgsv\", beta = 2.0 }")
    data = {"kind": DEFAULT_KIND, **value}
    cls = mechanism_class(data["kind"], field=f"{field}.kind")
    try:
        return cls.Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        loc = ".".join(str(p) for p in err["loc"])
        name = f"{field}.{loc}" if loc else field
        if err["type"] == "extra_forbidden":
            allowed = ", ".join(cls.Settings.model_fields)
            raise InputError(name, err.get("input"), f"unknown setting for kind={data['kind']!r}; its settings "
                                                     f"are: {allowed}") from None
        if err["type"] == "literal_error" and loc == "kind":
            raise InputError(name, data["kind"], f"the kind {cls.__name__}.Settings declares: {err['msg']}") from None
        raise InputError(name, err.get("input"), str(err["msg"]).removeprefix("Value error, ")) from None


def build(settings: MechanismSettings, cooperative: Cooperative) -> Mechanism:
    """The mechanism its settings name, set up for ``cooperative``."""
    cls = mechanism_class(settings.kind)
    return cls(settings, cooperative)


def catalogue() -> dict[str, type[Mechanism]]:
    """Built-in and installed mechanisms by name (installed ones that fail to load are left out)."""
    out: dict[str, type[Mechanism]] = dict(BUILTINS)
    for name in discovered(GROUP):
        try:
            out[name] = mechanism_class(name)
        except InputError:
            continue
    return out


__all__ = [
    "BUILTINS",
    "CGSV",
    "ByMember",
    "CGSVSettings",
    "ContractSettings",
    "Contracts",
    "Cooperative",
    "DataSize",
    "DataSizeSettings",
    "EqualSplit",
    "EqualSplitSettings",
    "Mechanism",
    "MechanismSettings",
    "Offer",
    "Payout",
    "RevenueShares",
    "RevenueSharesSettings",
    "RoundView",
    "SharedModel",
    "as_arrays",
    "build",
    "catalogue",
    "mechanism_class",
    "payout_of",
    "settings_for",
]
