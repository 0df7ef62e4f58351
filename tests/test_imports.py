"""The package's import graph: imports flow one way (cli -> runner -> loop -> strategies, oracles ...)."""

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "alexp"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the alexp modules it imports anywhere in its body (lazy imports inside functions count too: a
    cycle through them still couples the two modules)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in modules:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    edges.add(sub if sub in modules else node.module)
        edges.discard(name)
        # A package's own __init__ importing its submodules is how a package is built, not a cycle.
        graph[name] = {e for e in edges if not (path.name == "__init__.py" and e.startswith(name + "."))}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by depth-first search (each reported once, from its smallest module)."""
    found = set()
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    i = path.index(min(path))
                    found.add(tuple(path[i:] + path[:i]))
                elif nxt not in path and nxt > start:
                    stack.append((nxt, [*path, nxt]))
    return [list(c) for c in sorted(found)]


def test_the_cycle_finder_finds_a_known_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_alexp_imports_one_that_imports_it_back():
    graph = import_graph()
    assert "alexp.runner" in graph and "alexp.cli" in graph  # the graph was read
    assert cycles(graph) == []


def test_nothing_imports_the_command_line_module():
    assert [m for m, edges in import_graph().items() if "alexp.cli" in edges and m != "alexp.__main__"] == []
