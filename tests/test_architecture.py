"""The shape of the package (docs/design.md, "Layers"): data flows one way,
tasks -> student -> teachers -> sources -> buffer -> train -> evaluate ->
report, and a module imports only from its own layer or the ones before it.

Every import counts: module level, inside functions and under TYPE_CHECKING
alike, since each is a dependency a reader has to follow. `from tripost.x
import y` where `y` is a module counts as importing `tripost.x.y`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tripost"

# Layer of each top-level module or package of tripost. The formats every
# stage reads or writes (the log's record schema, the config loader, the
# trajectory text format) and small utilities sit at the bottom.
LAYERS: dict[str, int] = {
    "tripost": 0, "errors": 0, "paths": 0, "format": 0, "jsonl": 0, "config": 0, "log": 0, "fileio": 0, "stats": 0, "settings": 0, "urls": 0, "registry": 0, "layout": 0,
    "tasks": 1,
    "student": 2,
    "teachers": 3,
    "sharpen": 4, "sources": 4, "verify": 4,
    "buffer": 5,
    "train": 6,
    "evaluate": 7, "gap": 7,
    "report": 8,
    "loop": 9, "runconfig": 9, "serve": 9, "export": 9,
    "cli": 10, "__main__": 10,
}


def modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = ("tripost", *p.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every tripost import in a file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, mod] if mod else base)
            if not mod.startswith("tripost"):
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                out.append((sub, "", node.lineno) if sub in known else (mod, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.startswith("tripost")]
    return out


MODULES = modules()
GRAPH = {name: imports(name, path, set(MODULES)) for name, path in MODULES.items()}


def top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "tripost"


def test_every_module_has_a_layer():
    assert not {top(m) for m in MODULES} - set(LAYERS), "add the new module to LAYERS (and to docs/design.md)"


def test_no_import_reaches_up_the_chain():
    bad = []
    for name, edges in GRAPH.items():
        for target, _, line in edges:
            if target in MODULES and LAYERS[top(target)] > LAYERS[top(name)]:
                bad.append(f"{MODULES[name].relative_to(ROOT.parent)}:{line} ({top(name)}, layer {LAYERS[top(name)]}) imports "
                           f"{target} (layer {LAYERS[top(target)]})")
    assert not bad, "\n".join(bad)


def test_no_module_imports_another_modules_private_name():
    bad = [f"{MODULES[name].relative_to(ROOT.parent)}:{line} imports {target}.{attr}"
           for name, edges in GRAPH.items() for target, attr, line in edges
           if attr.startswith("_") and not attr.startswith("__") and target != name]
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    edges = {name: sorted({t for t, _, _ in e if t in MODULES and t != name}) for name, e in GRAPH.items()}
    # Tarjan's strongly connected components: any component of 2+ modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, cycles


@pytest.mark.parametrize("fixture,expected", [
    ("from tripost.student.logprob import _forward\n", ["_forward"]),
    ("def f():\n    from tripost.buffer import closing_feedback\n", []),
])
def test_the_checks_see_function_level_and_private_imports(tmp_path, fixture, expected):
    """The graph reads imports inside functions too, and names private ones."""
    p = tmp_path / "m.py"
    p.write_text(fixture)
    found = imports("tripost.sharpen", p, set(MODULES))
    assert found and [a for _, a, _ in found if a.startswith("_")] == expected
    assert all(t.startswith("tripost.") for t, _, _ in found)
