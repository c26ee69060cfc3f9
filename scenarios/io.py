"""Atomic file output: a result is either fully written or absent, never half-written."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared like any file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def prepare_folder(path: Path, option: str = "--out") -> Path:
    """Create the output folder up front (so a bad ``--out`` fails before any work, as bad input) and
    check that files can be written there."""
    from coopsim.errors import InputError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(option, str(path), "a folder (this path is an existing file)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".coopsim-probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InputError(option, str(path), f"a folder that can be created and written ({exc.strerror})") from None
    return path


def owned_files(folder: Path) -> list[str]:
    """Files (relative paths) that the run stored in ``folder`` wrote there, as listed under
    ``files`` in its ``summary.json`` (empty when there is none, or an older one without the list)."""
    try:
        listed = json.loads((Path(folder) / "summary.json").read_text()).get("files", [])
    except (OSError, ValueError, AttributeError):
        return []
    return [f for f in listed if isinstance(f, str)] if isinstance(listed, list) else []


def remove_stale(folder: Path, previous: list[str], written: list[Path]) -> list[str]:
    """Delete the files an earlier run listed (``previous``, relative to ``folder``) that this one did
    not write again: only files coopsim itself wrote there are ever removed. Returns ``written``
    relative to ``folder`` (the new list for ``summary.json``)."""
    base = os.path.abspath(folder)  # relative names as written (a symlinked figures/ stays figures/…)
    now = sorted({Path(os.path.relpath(os.path.abspath(p), base)).as_posix() for p in written})
    root = Path(folder).resolve()
    for rel in set(previous) - set(now):
        target = (Path(folder) / rel).resolve()
        if target.is_relative_to(root) and target.is_file():  # never outside the results folder
            target.unlink()
    return now


def write_json(path: Path, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=_plain) + "\n"))


def _plain(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def scenario_named(path: Path, *, follow: int = 1) -> str | None:
    """The library scenario a sweep or scenario file names (its ``scenario`` key), read without
    validating (for warming workers up before planning; the file is validated later). A key that
    is a TOML path (relative to ``path``'s folder) is followed ``follow`` times; None when it cannot
    tell (no file, bad TOML, no name)."""
    import tomllib

    try:
        name = tomllib.loads(Path(path).read_text(encoding="utf-8")).get("scenario")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    if not isinstance(name, str):
        return None
    if name.endswith(".toml"):
        if follow <= 0:
            return None
        target = Path(name)
        return scenario_named(target if target.is_absolute() else Path(path).parent / target, follow=follow - 1)
    return name
