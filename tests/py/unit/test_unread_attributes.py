"""No internal attribute of pgtq is written but never read.

An attribute assigned on ``self`` counts as internal when its name starts
with ``_`` or its class lives in a private module (a path part starting
with ``_``, such as pgtq/worker/_listener.py). It must be read: as
``self.name`` in its class, a base class or a subclass (calling a method
that only changes it, such as ``.set()``, ``.clear()`` or ``.append()``,
is no read), or as ``other.name`` / ``getattr(other, "name")`` anywhere
in the package. An attribute that is only written is dead state a reader
takes for meaningful (``Listener.connected``, an Event set and cleared but
never looked at, and ``ProcessPool._closed`` were). Public attributes of
public classes are API, there for users too, and are not checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "pgtq"

# Methods that change their receiver and tell nothing about it.
CHANGERS = {"set", "clear", "append", "extend", "add", "discard", "update", "put", "put_nowait", "remove"}


@dataclass
class ClassInfo:
    bases: set[str]
    written: set[str] = field(default_factory=set)
    read: set[str] = field(default_factory=set)


def _is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _assigned(node: ast.AST) -> Iterator[ast.expr]:
    if isinstance(node, ast.Assign):
        yield from node.targets
    elif isinstance(node, ast.AnnAssign | ast.AugAssign):
        yield node.target


def classes(tree: ast.Module) -> dict[str, ClassInfo]:
    """What each class writes on ``self`` and reads from ``self``."""
    found = {}
    for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
        info = found[cls.name] = ClassInfo({base.id for base in cls.bases if isinstance(base, ast.Name)})
        changed = set()
        for node in ast.walk(cls):
            for target in _assigned(node):
                if isinstance(target, ast.Attribute) and _is_self(target.value):
                    info.written.add(target.attr)
                    if isinstance(node, ast.AugAssign):
                        info.read.add(target.attr)  # self.n += 1 reads self.n
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in CHANGERS
                and isinstance(node.func.value, ast.Attribute)
                and _is_self(node.func.value.value)
            ):
                changed.add(id(node.func.value))
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Load)
                and _is_self(node.value)
                and id(node) not in changed
            ):
                info.read.add(node.attr)
    return found


def reads_from_elsewhere(tree: ast.Module) -> set[str]:
    """Attribute names read from objects other than ``self``."""
    reads = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and not _is_self(node.value):
            reads.add(node.attr)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
        ):
            reads.add(str(node.args[1].value))
    return reads


def _ancestors(name: str, infos: dict[str, ClassInfo]) -> set[str]:
    found, todo = set(), [name]
    while todo:
        for base in infos[todo.pop()].bases & infos.keys():
            if base not in found:
                found.add(base)
                todo.append(base)
    return found


def _related(name: str, infos: dict[str, ClassInfo]) -> set[str]:
    """The class, its ancestors and its descendants within the module."""
    return {name} | _ancestors(name, infos) | {other for other in infos if name in _ancestors(other, infos)}


def unread(root: Path) -> list[str]:
    parsed = {path: ast.parse(path.read_text()) for path in root.rglob("*.py")}
    elsewhere = set().union(*(reads_from_elsewhere(tree) for tree in parsed.values()))
    found = []
    for path, tree in parsed.items():
        private_module = any(part.startswith("_") and part != "__init__.py" for part in path.parts[-2:])
        infos = classes(tree)
        for name, info in infos.items():
            read = set().union(*(infos[other].read for other in _related(name, infos)))
            for attribute in sorted(info.written):
                internal = private_module or attribute.startswith("_")
                if internal and not attribute.startswith("__") and attribute not in read | elsewhere:
                    found.append(f"{path.relative_to(root.parent)}: {name}.{attribute}")
    return sorted(found)


def test_every_internal_attribute_written_is_read() -> None:
    assert unread(PACKAGE) == []


def test_the_check_finds_an_attribute_only_written(tmp_path: Path) -> None:
    module = tmp_path / "pgtq" / "_listener.py"
    module.parent.mkdir()
    module.write_text(
        "class Listener:\n"
        "    def __init__(self):\n"
        "        self.connected = False\n"
        "        self._stopping = False\n"
        "        self.count = 0\n"
        "    def run(self):\n"
        "        self.connected = True\n"
        "        self.connected.set()\n"
        "        self.count += 1\n"
        "        return self._stopping\n"
        "class Pool:\n"
        "    def __init__(self):\n"
        "        self._closed = False\n"
        "class ThreadPool(Pool):\n"
        "    def close(self):\n"
        "        return self._closed\n"
        "class ProcessPool(Pool):\n"
        "    def close(self):\n"
        "        self._closed = True\n"
    )
    assert unread(tmp_path / "pgtq") == [
        "pgtq/_listener.py: Listener.connected",
        "pgtq/_listener.py: ProcessPool._closed",  # a sibling class's read is no read of its own
    ]
