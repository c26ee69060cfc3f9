"""The one error type for bad input, shared by every layer.

Every check on user-supplied input raises :class:`InputError`, whose message names the field, the
value received and what is allowed, so that a researcher can fix a scenario file without reading code.
The CLI maps it to exit code 2.
"""

from __future__ import annotations

from typing import Any


class InputError(ValueError):
    """Bad input: ``field`` had ``value``, but only ``allowed`` is accepted."""

    def __init__(self, field: str, value: Any, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}={_short(value)}: {allowed}")


class InputErrors(InputError):
    """Several problems in one input (a scenario file and its ``--set`` values): each is an
    :class:`InputError`, all are reported at once. ``field`` etc. are the first one's."""

    def __init__(self, errors: list[InputError]) -> None:
        first = errors[0]
        self.errors = list(errors)
        ValueError.__init__(self, f"{len(errors)} problems:\n" + "\n".join(f"  - {e}" for e in errors))
        self.field, self.value, self.allowed = first.field, first.value, first.allowed


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut in the middle to ``limit`` characters: both ends stay (a long path keeps its
    file name, a long list its first and last entries)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    head = (limit - 3) // 2
    return text[:head] + "..." + text[len(text) - (limit - 3 - head):]


def check(condition: bool, field: str, value: Any, allowed: str) -> None:
    """Raise :class:`InputError` unless ``condition`` holds."""
    if not condition:
        raise InputError(field, value, allowed)


def check_fraction(field: str, value: float) -> float:
    """A number in [0, 1] (finite)."""
    ok = isinstance(value, int | float) and 0.0 <= float(value) <= 1.0
    check(ok, field, value, "a fraction in [0, 1]")
    return float(value)


def check_choice(field: str, value: Any, choices: Any) -> Any:
    """One of ``choices`` (shown sorted in the message)."""
    check(value in choices, field, value, f"one of {sorted(choices)}")
    return value


class PluginError(RuntimeError):
    """A user's plug-in (a mechanism, a strategy) raised or misbehaved during a run. The message names
    the plug-in and where (``setup`` or the round); the plug-in's own exception is the ``__cause__``,
    whose traceback the CLI shows once."""

    def __init__(self, message: str, *, plugin: str, where: str) -> None:
        super().__init__(message)
        self.plugin = plugin
        self.where = where
