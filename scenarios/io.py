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


def remove_stale(folder: Path, pattern: str, keep: list[Path]) -> None:
    """Delete files matching ``pattern`` in ``folder`` that this run did not write (figures or tables
    of an earlier run into the same folder)."""
    kept = {Path(p).resolve() for p in keep}
    for old in Path(folder).glob(pattern):
        if old.is_file() and old.resolve() not in kept:
            old.unlink()


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
