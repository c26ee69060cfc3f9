"""Scenario files: TOML validated by pydantic, ``--set key=value`` overrides and the root seed.

A scenario file is a TOML document whose top-level ``scenario`` key names a scenario of the library
(see :mod:`scenarios.registry`); every other key is a field of that scenario's configuration class.
Configuration classes derive from :class:`Section` (``extra="forbid"``: an unknown key is an error;
every field has a default and a ``description``). Overrides use dotted paths and TOML literals::

    coopsim run contracts --set two_type.n_participants=[2,10] --set model.k=1.5 --seed 3

A value that is not a TOML literal is taken as a bare string (``--set dataset=digits``). Every
validation failure becomes an :class:`~coopsim.errors.InputError` naming the field (dotted path),
the value received and what is allowed; the CLI maps it to exit code 2.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from coopsim.errors import InputError, InputErrors

#: The top-level key of a scenario file that names its scenario (not a configuration field).
SCENARIO_KEY = "scenario"


class Section(BaseModel):
    """A block of configuration: unknown keys are errors, defaults are validated too."""

    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)


class ScenarioConfig(Section):
    """Base of every scenario's configuration: the root seed is a field like any other, so that a
    scenario file may fix it and ``--seed`` overrides it."""

    seed: int = Field(0, ge=0, le=2**63 - 1, description="root seed; it reaches every random source explicitly")
    ci_level: float = Field(0.95, gt=0.5, lt=1.0,
                            description="confidence level of every interval over replicates (scenarios.stats)")


C = TypeVar("C", bound=BaseModel)


def parse_value(text: str) -> Any:
    """A ``--set`` value as a TOML literal (``2``, ``1.5``, ``true``, ``[1, 2]``, ``"x"``, ``{a = 1}``),
    else the bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=value"`` → (``["a", "b"]``, parsed value)."""
    key, sep, value = item.partition("=")
    key = key.strip()
    path = key.split(".")
    if not sep or not key or any(not part.strip() for part in path):
        raise InputError("--set", item, "key=value with a dotted key path, e.g. training.epochs=2")
    return [p.strip() for p in path], parse_value(value.strip())


def set_path(data: dict[str, Any], path: list[str], value: Any, *, label: str | None = None) -> None:
    """Set ``data[path[0]][path[1]]… = value``, creating tables on the way."""
    node = data
    for depth, part in enumerate(path[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise InputError(label or ".".join(path), value,
                             f"a path through tables, but {'.'.join(path[:depth + 1])} is not a table")
        node = child
    node[path[-1]] = value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str] = (), seed: int | None = None, *,
                    assignments: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A deep copy of ``data`` with ``assignments`` (``{"a.b": value}``, e.g. a sweep's base and grid
    point), then every ``--set`` override (in order), then ``--seed`` applied."""
    out = copy.deepcopy(dict(data))
    for key, value in (assignments or {}).items():
        set_path(out, key.split("."), copy.deepcopy(value), label=key)
    for item in overrides:
        path, value = parse_override(item)
        set_path(out, path, value, label=".".join(path))
    if seed is not None:
        out["seed"] = seed
    return out


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing file or a syntax error is bad input (exit 2)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file", str(path), "an existing TOML file")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise InputError(str(path), "(TOML)", f"valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise InputError(str(path), "(bytes)", "a UTF-8 text file") from exc


def as_toml(document: Mapping[str, Any], header: str = "") -> str:
    """A scenario document as TOML text, under a comment ``header`` (the files ``coopsim tune`` and
    the dashboard write, which ``coopsim run`` reads back exactly)."""
    import tomli_w

    lines = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return lines + tomli_w.dumps(dict(document))


def validate(cls: type[C], data: Mapping[str, Any], *, prefix: str = "") -> C:
    """``cls.model_validate(data)``, turning every pydantic error into an :class:`InputError` that
    names the dotted field, the value received and what is allowed (several at once as
    :class:`~coopsim.errors.InputErrors`)."""
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        raise as_input_error(exc, cls, prefix) from None


def as_input_error(exc: ValidationError, cls: type[BaseModel], prefix: str = "") -> InputError:
    """Every error of a pydantic ``ValidationError`` as an :class:`InputError` (one) or
    :class:`~coopsim.errors.InputErrors` (several, each named)."""
    errors = [_one_error(err, cls, prefix) for err in exc.errors(include_url=False)]
    unique = list({str(e): e for e in errors}.values())
    return unique[0] if len(unique) == 1 else InputErrors(unique)


def _one_error(err: Any, cls: type[BaseModel], prefix: str) -> InputError:
    loc = [str(p) for p in err["loc"]]
    inner = err.get("ctx", {}).get("error")
    if isinstance(inner, InputError):  # a validator's own error: its field is relative to its model
        head = loc[:-1] if loc and inner.field.split(".")[0] == loc[-1] else loc
        return InputError(prefix + ".".join([*head, inner.field]), inner.value, inner.allowed)
    field = prefix + ".".join(loc) if loc else (prefix.rstrip(".") or cls.__name__)
    if err["type"] == "missing":
        return InputError(field, "(missing)", "a value: this field is required")
    if err["type"] == "value_error" and isinstance(err.get("input"), Mapping):
        # a model-level check: its message names the fields; the whole section's values would drown it
        return InputError(field, "(these settings)", str(err["msg"]).removeprefix("Value error, "))
    if err["type"] == "extra_forbidden":
        allowed = sorted(_fields_at(cls, loc[:-1]))
        return InputError(field, err.get("input"), f"unknown field; allowed here: {', '.join(allowed) or '(none)'}")
    return InputError(field, err.get("input"), str(err["msg"]))


def _fields_at(cls: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the (nested) model at ``loc``, best effort, for error messages."""
    model: Any = cls
    for part in loc:
        if part.isdigit():
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = model_type(field.annotation)
        if model is None:
            return []
    return list(getattr(model, "model_fields", {}))


def model_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = model_type(arg)
        if found is not None:
            return found
    return None


def section_type(annotation: Any) -> type[BaseModel] | None:
    """The model of a configuration *section*: a field typed exactly as one pydantic model, whose
    tables merge key by key. A union (``str | DataFile``) or a validated entry (a mechanism, whose
    ``kind`` picks its settings) is a value: a table given for it replaces the default whole."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables → ``{"a.b": value}`` (lists and scalars are leaves)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def flatten_sections(data: Mapping[str, Any], model: type | None, prefix: str = "") -> dict[str, Any]:
    """Like :func:`flatten`, but a table is split into dotted keys only where it is a configuration
    section of ``model`` (a pydantic model); any other mapping (e.g. ``behaviours``) stays one value,
    so that it replaces the default mapping instead of being merged into it."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        node: Any = model
        for part in key.split("."):
            field = getattr(node, "model_fields", {}).get(part)
            node = section_type(field.annotation) if field is not None else None
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and node is not None:
            out.update(flatten_sections(value, node, f"{name}."))
        else:
            out[name] = value
    return out


def undocumented_fields(cls: type[BaseModel], prefix: str = "", *, own_only: bool = True) -> list[str]:
    """Fields (dotted) of ``cls`` and its nested :class:`Section` models that lack a default or a
    description (used by the tests to hold every scenario to the rule)."""
    missing: list[str] = []
    for name, field in cls.model_fields.items():
        if field.is_required() or not field.description:
            missing.append(prefix + name)
        nested = model_type(field.annotation)
        if nested is not None and (not own_only or issubclass(nested, Section)):
            missing += undocumented_fields(nested, f"{prefix}{name}.", own_only=own_only)
    return missing
