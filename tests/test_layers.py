"""The floors of docs/architecture.md, checked on the source: core imports no domain, nothing
below the entry points imports them, no service imports a router or deps, and no module
import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import chatgate

ROOT = Path(chatgate.__file__).parent
ENTRY_POINTS = {"chatgate.main", "chatgate.worker", "chatgate.cli", "chatgate.runtime"}
HTTP_SIDE = (".router", ".deps", ".lane")
EDGE = "chatgate.gateway"  # the front door: above every domain, HTTP side included


def _modules() -> dict[str, set[str]]:
    paths = {}
    for path in ROOT.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts)
        paths[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        imported: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module in paths:
                imported.add(node.module)
                imported.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
        graph[name] = imported & paths.keys()
    return graph


GRAPH = _modules()


def test_core_imports_no_domain() -> None:
    wrong = {
        (module, target)
        for module, targets in GRAPH.items()
        if module.startswith("chatgate.core")
        for target in targets
        if not target.startswith("chatgate.core")
    }
    assert not wrong


def test_only_entry_points_import_entry_points() -> None:
    wrong = {
        (module, target)
        for module, targets in GRAPH.items()
        if module not in ENTRY_POINTS
        for target in targets & ENTRY_POINTS
    }
    assert not wrong


def test_no_service_imports_the_http_side() -> None:
    wrong = {
        (module, target)
        for module, targets in GRAPH.items()
        if module not in ENTRY_POINTS
        and not module.endswith(HTTP_SIDE)
        and not module.startswith(EDGE)
        for target in targets
        if target.endswith(HTTP_SIDE)
    }
    assert not wrong


def test_no_import_cycle() -> None:
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            raise AssertionError(" -> ".join((*path[path.index(module) :], module)))
        if module in done:
            return
        for target in sorted(GRAPH[module]):
            visit(target, (*path, module))
        done.add(module)

    for module in sorted(GRAPH):
        visit(module, ())
