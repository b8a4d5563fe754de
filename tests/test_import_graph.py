"""The import graph of ``linalgformer`` has no cycle, and imports inside functions are rare.

The graph is read statically from the AST: module-level and function-level imports, plus every
string constant that names a package module (the experiment registry loads families by name), so
that an import hidden in a function or a registry still counts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "linalgformer"
ROOT = Path(__file__).resolve().parents[1] / "src" / PACKAGE
# modules allowed to import inside functions (the CLI, and the package root whose API attributes
# load on first use, both for start-up time: torch takes seconds) and the heavy optional
# dependencies any module may load lazily
LAZY_MODULES = {f"{PACKAGE}.cli", PACKAGE}
LAZY_DEPENDENCIES = ("matplotlib", "torch.utils.tensorboard")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(), str(p)) for p in sorted(ROOT.rglob("*.py"))}


def imported(node: ast.AST, here: str, is_package: bool, known: set[str] | None = None) -> list[str]:
    """Absolute names an import node brings in (``from a import b`` yields a.b and a; only a.b when
    ``known`` says that b is a module: ``from linalgformer import matrices`` uses the submodule,
    not what the package's ``__init__`` defines)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        anchor = here.split(".")[: len(here.split(".")) - node.level + (1 if is_package else 0)]
        base = ".".join(anchor + ([base] if base else []))
    names = [f"{base}.{alias.name}" for alias in node.names]
    return names if known is not None and all(n in known for n in names) else [base] + names


def named_modules(tree: ast.Module, known: set[str]) -> set[str]:
    """String constants naming one of our modules (a registry of plug-ins loaded by name)."""
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in known}


def graph() -> dict[str, set[str]]:
    trees = modules()
    known = set(trees)
    edges = {}
    for name, tree in trees.items():
        is_package = name == PACKAGE or (ROOT.parent / name.replace(".", "/") / "__init__.py").exists()
        targets = {t for node in ast.walk(tree) for t in imported(node, name, is_package, known)}
        targets |= named_modules(tree, known)
        edges[name] = {t for t in targets if t in known and t != name}
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node], _ = 1, stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node], _ = 2, stack.pop()
        return None

    for start in sorted(edges):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def function_level_imports() -> list[str]:
    """'module:line name' for every import inside a function that is neither in an allowed module
    nor a heavy optional dependency with a reason comment on its line."""
    found = []
    for name, tree in modules().items():
        if name in LAZY_MODULES:
            continue
        lines = (ROOT.parent / name.replace(".", "/")).with_suffix(".py")
        source = (lines if lines.exists() else lines.with_suffix("") / "__init__.py").read_text().splitlines()
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found += [f"{name}:{node.lineno} {target}" for node in ast.walk(func)
                          for target in imported(node, name, False)[:1]
                          if not (target.startswith(LAZY_DEPENDENCIES) and "#" in source[node.lineno - 1])]
    return found


def test_the_package_has_no_import_cycle():
    edges = graph()
    assert len(edges) > 40 and f"{PACKAGE}.training" in edges  # the walk found the package
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_planted_cycle():
    edges = dict(graph())
    edges[f"{PACKAGE}.errors"] = {f"{PACKAGE}.training"}  # the ground floor reaching up to the trainer
    assert find_cycle(edges) is not None


def test_the_registry_counts_as_an_import():
    edges = graph()
    registry = [m for m, targets in edges.items() if f"{PACKAGE}.experiments.charton" in targets]
    assert registry, "nothing imports the charton plug-in: the registry edges were missed"


@pytest.mark.parametrize("floor, above", [
    ("errors", ("config", "training", "cli")),
    ("sequences", ("tokens", "problems", "models", "experiments")),
    ("files", ("checkpoint", "tracking", "training")),
])
def test_the_ground_floor_imports_nothing_above_it(floor, above):
    targets = graph()[f"{PACKAGE}.{floor}"]
    assert not [t for t in targets if t.split(".")[1] in above]


def test_imports_inside_functions_are_only_for_heavy_optional_dependencies():
    assert function_level_imports() == []
