"""The layers import downward only and no module takes part in an import circle — counting every
import statement, also those inside functions and under ``TYPE_CHECKING`` (a circle says a piece is
in the wrong module)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("coopsim", "economics", "learning", "sim", "scenarios")
#: what each layer may import from the project (itself included)
ALLOWED = {
    "coopsim": {"coopsim"},
    "economics": {"coopsim", "economics"},
    "learning": {"coopsim", "economics", "learning"},
    "sim": {"coopsim", "economics", "learning", "sim"},
    "scenarios": {"coopsim", "economics", "learning", "sim", "scenarios"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules imported anywhere in the file (``from a import b`` counts ``a.b`` when it
    is a module, else ``a``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def test_layers_import_downward_only():
    wrong = sorted((src, dst) for src, dsts in _graph().items() for dst in dsts
                   if dst.split(".")[0] not in ALLOWED[src.split(".")[0]])
    assert not wrong, f"imports against the layering: {wrong}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_anywhere():
    """A package's ``__init__`` re-exporting its submodules is not a circle unless a submodule also
    imports the package back; every import statement counts, lazy and TYPE_CHECKING ones too."""
    cycles = _cycles(_graph())
    assert not cycles, f"import circles: {cycles}"


def test_the_checker_sees_lazy_and_type_checking_imports(tmp_path):
    """The graph builder must not miss an import hidden in a function or under TYPE_CHECKING."""
    src = tmp_path / "m.py"
    src.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sim.model import X\n"
                   "def f():\n    import sim.agents\n")
    found = _imports(src, "m", {"sim", "sim.model", "sim.agents"})
    assert found == {"sim.model", "sim.agents"}
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
