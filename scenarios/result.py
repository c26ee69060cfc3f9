"""What a scenario run returns and how it is stored.

A :class:`ScenarioResult` is a tidy long table plus headline numbers:

- ``frame``: one row per measured number with the columns ``run_id, seed, round, agent, variable,
  value`` (``agent`` is ``""`` for cooperative-level numbers, ``round`` is -1 when the number has no
  time index), optionally extra key columns a scenario needs (``setting``, ``method``, ``partition``,
  ``replicate``…), and the scenario's parameters as ``param.<dotted field>`` columns;
- ``summary``: a JSON-able dict of headline numbers (``summary.json``);
- ``tables``: optional small tables for the terminal and ``tables/<name>.csv``.

Stored layout of a results folder: ``results.parquet``, ``summary.json``, ``tables/*.csv``,
``figures/*.png``. A sweep stores each finished run as one parquet file whose schema metadata also
carries the run's summary, so one atomic rename marks the run as done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scenarios.config import flatten
from scenarios.io import _plain, atomic_write

KEY_COLUMNS = ("run_id", "seed", "round", "agent", "variable", "value")
PARAM_PREFIX = "param."
SUMMARY_META = b"coopsim.summary"


@dataclass
class ScenarioResult:
    """Tidy results of one run (see the module docstring)."""

    frame: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """A scenario's raw rows (dicts with ``variable``, ``value`` and optionally ``round``, ``agent``
    and extra key columns) as a DataFrame for :class:`ScenarioResult`."""
    return pd.DataFrame(rows)


def tidy(frame: pd.DataFrame, *, run_id: str, seed: int, params: dict[str, Any] | None = None) -> pd.DataFrame:
    """The stored long table: stamp ``run_id`` and ``seed``, default ``round`` (-1) and ``agent``
    (``""``), order the key columns first and add ``param.*`` columns."""
    df = frame.copy()
    if df.empty:
        df = pd.DataFrame(columns=["round", "agent", "variable", "value"])
    if "round" not in df:
        df["round"] = -1
    if "agent" not in df:
        df["agent"] = ""
    df["round"] = df["round"].fillna(-1).astype("int64")
    df["agent"] = df["agent"].fillna("").astype(str)
    df["variable"] = df["variable"].astype(str)
    df["value"] = df["value"].astype("float64")
    df = df.drop(columns=[c for c in ("run_id", "seed") if c in df])
    df.insert(0, "run_id", run_id)
    df.insert(1, "seed", np.int64(seed))
    extra = [c for c in df.columns if c not in KEY_COLUMNS]
    df = df[[*KEY_COLUMNS, *extra]]
    for key, value in flatten(params or {}).items():
        df[PARAM_PREFIX + key] = param_value(value)
    return df.reset_index(drop=True)


def param_value(value: Any) -> Any:
    """Scalars stay scalars; lists and tables become JSON text (one type per column)."""
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, default=_plain, sort_keys=True)


def write_parquet(path: Path, frame: pd.DataFrame, summary: dict[str, Any] | None = None) -> Path:
    """Write ``frame`` as parquet atomically; ``summary`` (if given) rides in the schema metadata."""
    import pyarrow.parquet as pq

    table = _arrow_table(frame, summary)
    return atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))


def parquet_bytes(frame: pd.DataFrame, summary: dict[str, Any] | None = None) -> bytes:
    """The bytes :func:`write_parquet` would write (for a worker to encode and a coordinator to store)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(_arrow_table(frame, summary), sink)
    return sink.getvalue().to_pybytes()


def _arrow_table(frame: pd.DataFrame, summary: dict[str, Any] | None) -> Any:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False)
    if summary is not None:
        meta = dict(table.schema.metadata or {})
        meta[SUMMARY_META] = json.dumps(summary, default=_plain).encode()
        table = table.replace_schema_metadata(meta)
    return table


def read_parquet(path: Path) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """Read a frame written by :func:`write_parquet` and its summary (None when absent)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(SUMMARY_META)
    return table.to_pandas(), (json.loads(raw) if raw else None)


def write_tables(folder: Path, tables: dict[str, pd.DataFrame]) -> list[Path]:
    """Each table as ``folder/<name>.csv``, atomically."""
    out = []
    for name, table in tables.items():
        out.append(atomic_write(Path(folder) / f"{name}.csv", lambda tmp, t=table: t.to_csv(tmp, index=False)))
    return out
