"""Agent-level rows read from the principals' columns, one vectorised pass per round.

Mesa's ``DataCollector`` records an agent reporter by calling it on every agent: with eleven
reporters that is eleven attribute look-ups per principal and round, ten times the cost of the
round itself at 400 principals (a sweep spent most of its time there). :class:`ColumnDataCollector`
is a ``DataCollector`` that keeps everything else as Mesa does (model reporters, tables,
``get_model_vars_dataframe``, ``get_agent_vars_dataframe``) and builds each round's agent records
from whole columns instead: the same tuples ``(step, unique_id, *values)`` in the same order, with
the same Python scalar types, so its frames equal the stock collector's (tested against it in
``tests/sim/test_collect.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import mesa
import numpy as np

__all__ = ["ColumnDataCollector"]

#: per-agent values of each agent reporter, in the order of ``ids``
Columns = Mapping[str, np.ndarray | list]


class ColumnDataCollector(mesa.DataCollector):
    """A Mesa ``DataCollector`` whose agent reporters come from ``columns()``: a mapping from each
    reporter's name to its values for the agents ``ids`` (one array or list per reporter, in the
    order of ``ids``). ``agent_reporters`` names the reporters as for the stock collector (their
    values are only used to name the columns). The agents recorded are ``ids``; the model must keep
    them equal to its agents (the principals are never removed)."""

    def __init__(
        self,
        model_reporters: dict[str, Any] | None,
        agent_reporters: dict[str, Any] | None,
        columns: Callable[[], Columns],
        ids: np.ndarray,
    ) -> None:
        super().__init__(model_reporters=model_reporters, agent_reporters=agent_reporters)
        self._columns = columns
        self._ids = np.asarray(ids).tolist()

    def _record_agents(self, model: mesa.Model) -> Iterable[tuple]:
        columns = self._columns()
        values = []
        for name in self.agent_reporters:
            column = columns[name]
            values.append(column.tolist() if isinstance(column, np.ndarray) else list(column))
        steps = [model.steps] * len(self._ids)
        return zip(steps, self._ids, *values, strict=True)
