"""Budget-constrained optimal contracts ("Paid with Models", P; SPEC §5)."""

from economics.contracts.accuracy import AccuracyFunction, Arctan, GeneralisationBound, PowerLaw
from economics.contracts.benchmark import (
    CompleteInformation,
    complete_information,
    complete_information_for,
    expected_information_rent,
    information_cost,
    information_rent,
)
from economics.contracts.menu import VIOLATION_TOL, ContractCheck, ContractMenu, expected_budgets
from economics.contracts.outcomes import Outcomes, multinomial_outcomes, multinomial_pmf, n_outcomes
from economics.contracts.pooled import (
    METHODS,
    ConvolvedDraws,
    EnumeratedDraws,
    FirstMoments,
    TypeDraws,
    sum_distribution,
    type_draws,
)
from economics.contracts.realisation import Realisation, realise
from economics.contracts.reservation import reservation_utilities, standalone_optimum
from economics.contracts.solver import solve_first_moment, solve_full_constraints, validate_types

__all__ = [
    "METHODS",
    "VIOLATION_TOL",
    "AccuracyFunction",
    "Arctan",
    "CompleteInformation",
    "ContractCheck",
    "ContractMenu",
    "ConvolvedDraws",
    "EnumeratedDraws",
    "FirstMoments",
    "GeneralisationBound",
    "Outcomes",
    "PowerLaw",
    "Realisation",
    "TypeDraws",
    "complete_information",
    "complete_information_for",
    "expected_budgets",
    "expected_information_rent",
    "information_cost",
    "information_rent",
    "multinomial_outcomes",
    "multinomial_pmf",
    "n_outcomes",
    "realise",
    "reservation_utilities",
    "solve_first_moment",
    "solve_full_constraints",
    "standalone_optimum",
    "sum_distribution",
    "type_draws",
    "validate_types",
]
