"""The house's shape, checked: rooms import only rooms below them (ROOMS), no import cycle
between awslab's modules (function-level imports included: they hid the last two), and no module
using another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "awslab"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The awslab module ``name`` refers to (a module, or a name inside one), or None."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> tuple[set[str], list[str]]:
    """(awslab modules ``module`` imports anywhere in it, private names it takes from them)."""
    tree = ast.parse(MODULES[module].read_text())
    deps: set[str] = set()
    private: list[str] = []
    aliases: dict[str, str] = {}     # local name -> awslab module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("awslab"):
                    deps.add(_resolve(a.name))
                    aliases[a.asname or a.name] = _resolve(a.name)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("awslab"):
            for a in node.names:
                target = _resolve(f"{node.module}.{a.name}")
                deps.add(target)
                if target == f"{node.module}.{a.name}":
                    aliases[a.asname or a.name] = target
                elif a.name.startswith("_") and a.name != "__version__":
                    private.append(f"{module} imports {node.module}.{a.name}")
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            private.append(f"{module} uses {aliases[node.value.id]}.{node.attr}")
    deps.discard(module)
    deps.discard(None)
    return {d for d in deps if d != "awslab"}, private


def test_no_import_cycle_between_awslab_modules():
    graph = {m: _imports(m)[0] for m in MODULES}
    cycles, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                cycles.append(path[path.index(d):] + [d] if d in path else [m, d])
            elif d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert cycles == []


def test_no_module_uses_another_modules_private_names():
    assert [p for m in sorted(MODULES) for p in _imports(m)[1]] == []


# The rooms and the rooms each may import (function-level imports included): the command line
# over the commands, over verify, the AWS handlers and the local AWS, over the engine, over the
# lab's spec and model, over awslab's home on this machine. ``awslab/__init__`` (the version) and
# ``errors`` are below everything. The local AWS (a server of its own) never imports the client's
# engine or handlers; the engine never imports the handlers (it is handed their registry) nor
# starts the local AWS (it is handed that too).
ROOMS: dict[str, set[str]] = {
    "__main__": {"cli"},
    "cli": {"commands", "verify", "aws", "local", "engine", "ui", "spec", "home"},
    "commands": {"verify", "aws", "local", "engine", "ui", "spec", "home"},
    "verify": {"aws", "local", "engine", "spec", "home"},
    "aws": {"engine", "spec", "home"},
    "local": {"spec", "home"},
    "engine": {"spec", "home"},
    "ui": {"spec"},
    "spec": set(),
    "home": set(),
    "errors": set(),
}
BELOW_ALL = {"awslab", "awslab.errors"}


def _room(module: str) -> str:
    return module.split(".")[1] if "." in module else module


def test_rooms_import_only_the_rooms_below_them():
    assert set(ROOMS) == {_room(m) for m in MODULES if m != "awslab"}, "a room was added: place it in ROOMS"
    upward = sorted(f"{m} imports {d}" for m in MODULES if m != "awslab"
                    for d in _imports(m)[0] if d not in BELOW_ALL
                    and _room(d) != _room(m) and _room(d) not in ROOMS[_room(m)])
    assert upward == []
