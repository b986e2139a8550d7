"""The package map holds (docs/architecture.md): no import circles, `auth` and `resilience`
never import the gateway, the serving package imports neither the dev stack nor model
building (only the CLI reaches them, lazily, for `gateway up` and `gateway models build`),
and `gateway/`'s root keeps to a handful of modules."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("gateway", "auth", "resilience", "devstack", "model_build")


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = modules()


def resolve(name: str) -> str | None:
    """The project module `name` refers to (a name imported from it resolves to it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(path: Path, top_level_only: bool) -> Iterator[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        else:
            continue
        for name in names:
            target = resolve(name)
            if target is not None:
                yield target


def graph(top_level_only: bool) -> dict[str, set[str]]:
    return {
        module: set(imports(path, top_level_only)) - {module} for module, path in MODULES.items()
    }


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles() -> None:
    assert cycles(graph(top_level_only=True)) == []


def test_auth_and_resilience_never_import_the_gateway() -> None:
    edges = graph(top_level_only=False)
    assert {
        (module, target)
        for module, targets in edges.items()
        for target in targets
        if module.split(".")[0] in ("auth", "resilience") and target.startswith("gateway")
    } == set()


def test_the_serving_package_imports_no_dev_stack_or_model_building() -> None:
    edges = graph(top_level_only=False)
    outside = {
        (module, target)
        for module, targets in edges.items()
        for target in targets
        if module.startswith("gateway") and target.split(".")[0] in ("devstack", "model_build")
    }
    # Only the command line reaches them, for `gateway up` and `gateway models build`.
    assert {module for module, _ in outside} <= {"gateway.cli.main"}
    top_level = graph(top_level_only=True)
    assert not [t for t in top_level["gateway.cli.main"] if t.startswith(("devstack", "model_b"))]


def test_the_gateway_package_root_keeps_to_a_handful_of_modules() -> None:
    assert len(list((ROOT / "gateway").glob("*.py"))) <= 8
