"""What every benchmark reports: a measured value beside its goal, and whether one run met it.

A benchmark script exposes ``goals(quick: bool = False) -> list[Goal]`` (measured in one run) and,
as a script, prints them with :func:`report`. ``benchmarks/run_all.py`` collects every script's
goals into one results file and the README's performance table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    """One measured number from one run. ``target`` None: reported without a goal (context)."""

    script: str
    what: str
    measured: float
    unit: str = ""
    target: float | None = None
    higher_is_better: bool = False
    note: str = ""

    @property
    def met(self) -> bool | None:
        if self.target is None or self.measured != self.measured:
            return None
        return self.measured >= self.target if self.higher_is_better else self.measured <= self.target

    def measured_text(self) -> str:
        if self.measured != self.measured:  # NaN: not measured on this machine (the note says why)
            return "not measured"
        value = f"{self.measured:,.3g}" if abs(self.measured) < 1e4 else f"{self.measured:,.0f}"
        return f"{value} {self.unit}".strip()

    def goal_text(self) -> str:
        if self.target is None:
            return ""
        op = "≥" if self.higher_is_better else "≤"
        value = f"{self.target:,.3g}" if abs(self.target) < 1e4 else f"{self.target:,.0f}"
        return f"{op} {value} {self.unit}".strip()

    def verdict(self) -> str:
        return {None: "", True: "met", False: "not met"}[self.met]

    def line(self) -> str:
        goal = f" (goal {self.goal_text()}: {self.verdict()})" if self.target is not None else ""
        note = f" — {self.note}" if self.note else ""
        return f"{self.what}: {self.measured_text()}{goal}{note}"


def report(goals: Sequence[Goal]) -> None:
    """Print one line per goal (what, measured, goal and whether this run met it)."""
    for goal in goals:
        print(goal.line(), flush=True)
