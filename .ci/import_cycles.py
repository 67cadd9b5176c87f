"""Fails when the parts of one room import each other in a circle, printing each circle.

A room is a folder of modules: a Rust module folder under `src/` or a Python package under
`python/q2l/`. Its parts are its files and its sub-folders (a sub-folder counts as one part,
whatever file inside it imports). Part A depends on part B when a file of A names B: in
Rust a `crate::`/`super::` path, in Python a relative import. A room's front (`mod.rs`,
`lib.rs`, `__init__.py`) declares and re-exports its parts and is left out; a part that
imports its own room's front counts as depending on every part that front imports.

Usage: python .ci/import_cycles.py [ROOT]  (ROOT: the repository, default the current folder)
"""

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

_FRONTS = ("mod.rs", "lib.rs", "__init__.py")
_RUST_PATH = re.compile(r"\b(crate|super)((?:::\w+)+)")
_RUST_GROUP = re.compile(r"\bsuper::\{([^}]*)\}")

Module = tuple[str, ...]


def _module(root: Path, f: Path) -> Module:
    parts = f.relative_to(root).with_suffix("").parts
    return parts[:-1] if f.name in _FRONTS else parts


def _existing(root: Path, path: Module, suffix: str) -> Module:
    """The longest prefix of ``path`` that is a file or folder under ``root``."""
    for n in range(len(path), 0, -1):
        p = root.joinpath(*path[:n])
        # A compiled module (`_native`) is known by its stub.
        if p.is_dir() or p.with_suffix(suffix).is_file() or p.with_suffix(".pyi").is_file():
            return path[:n]
    return ()


def _rust_refs(src: Path, f: Path) -> Iterator[Module]:
    text = re.sub(r"//[^\n]*", "", f.read_text())
    here = _module(src, f)
    parent = here if f.name == "mod.rs" else here[:-1]
    up = parent[:-1] if f.name == "mod.rs" else parent
    for root, path in _RUST_PATH.findall(text):
        base = () if root == "crate" else up
        yield _existing(src, base + tuple(p for p in path.split("::") if p), ".rs")
    for group in _RUST_GROUP.findall(text):
        for name in re.findall(r"\b(\w+)\b", group):
            yield _existing(src, (*up, name), ".rs")


def _python_refs(pkg: Path, f: Path) -> Iterator[Module]:
    here = _module(pkg, f)
    package = here if f.name == "__init__.py" else here[:-1]
    for node in ast.walk(ast.parse(f.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                yield _existing(pkg, base + tuple(node.module.split(".")), ".py")
            else:
                for alias in node.names:
                    yield _existing(pkg, (*base, alias.name), ".py")


def _graphs(root: Path, files: list[Path], refs) -> dict[Module, dict[str, set[str]]]:
    """Per room, part -> the parts it depends on."""
    fronts = {_module(root, f): f for f in files if f.name in _FRONTS}
    rooms: dict[Module, dict[str, set[str]]] = {}
    for f in files:
        # A front is a part of the room above its own (`dataset/mod.rs` is `dataset`).
        mod = _module(root, f)
        targets = list(refs(root, f))
        for depth in range(len(mod)):
            room, part = mod[:depth], mod[depth]
            edges = rooms.setdefault(room, {}).setdefault(part, set())
            for t in targets:
                if t == room and room in fronts:
                    # The room's front: whatever it imports from this room.
                    for u in refs(root, fronts[room]):
                        if u[: len(room)] == room and len(u) > len(room) and u[len(room)] != part:
                            edges.add(u[len(room)])
                elif t[: len(room)] == room and len(t) > len(room) and t[len(room)] != part:
                    edges.add(t[len(room)])
    return rooms


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def walk(path: list[str]) -> None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt in path:
                cycle = path[path.index(nxt) :]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append([*cycle, nxt])
            elif len(path) < 10:
                walk([*path, nxt])

    for start in sorted(graph):
        walk([start])
    return found


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    src, pkg = root / "src", root / "python"
    trees = [
        ("src", _graphs(src, sorted(src.rglob("*.rs")), _rust_refs)),
        ("python", _graphs(pkg, sorted((pkg / "q2l").rglob("*.py")), _python_refs)),
    ]
    bad = 0
    for top, rooms in trees:
        for room, graph in sorted(rooms.items()):
            for c in _cycles(graph):
                bad += 1
                print(f"import circle in {'/'.join((top, *room))}: " + " -> ".join(c))
    print(f"{bad} import circles inside rooms")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
