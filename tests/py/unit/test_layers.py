"""The imports of pgtq/ follow its layers, and only the SQL-engine layer
talks to the database. Read from the source with ``ast``; no database.

The rules, checked on every module of pgtq/:

1. No import cycle. A module depends on each pgtq module it imports,
   wherever the import statement stands (function-level imports run too),
   except under ``if TYPE_CHECKING:`` (never run). ``from a import b``
   depends on the module ``a.b`` when there is one, else on ``a``; an
   import does not count as depending on the packages above the module it
   names (their ``__init__`` only re-exports).
2. Each module belongs to a layer (LAYERS below) and imports only from its
   own layer or lower ones: nothing low (the worker runtime) imports
   something high (the CLI).
3. Outside pgtq/_db/, psycopg is imported only under ``if TYPE_CHECKING:``
   (for annotations) or to name its exception classes (``psycopg.errors``,
   ``psycopg.<Name>Error``, as pgtq/errors.py does to translate them):
   nothing else can connect or execute.
4. Outside pgtq/_db/, no string literal other than a docstring begins like
   an SQL statement (an upper-case keyword such as SELECT, INSERT, LISTEN
   or ALTER followed by a space).

pgtq/migrate.py is client API: it drives alembic and calls the gateway;
the SQL files' whereabouts (pgtq/_db/schema.py) and what the alembic
revisions run (pgtq/_db/migration.py) are part of the SQL engine.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "pgtq"

BASE, SQL_ENGINE, CLIENT_API, WORKER_RUNTIME, CLI = range(5)
LAYERS = {
    # below the SQL engine, which builds these records and raises these errors
    "pgtq.errors": BASE,
    "pgtq.task": BASE,
    "pgtq._records": BASE,
    "pgtq._inspection": BASE,
    "pgtq._db": SQL_ENGINE,
    "pgtq.migrate": CLIENT_API,
    "pgtq.cron": CLIENT_API,
    "pgtq.metrics": CLIENT_API,
    "pgtq": CLIENT_API,
    "pgtq.database": CLIENT_API,
    "pgtq.queue": CLIENT_API,
    "pgtq.handler": CLIENT_API,
    "pgtq._targets": CLIENT_API,
    "pgtq._json": CLIENT_API,
    "pgtq._values": CLIENT_API,
    "pgtq._pushes": CLIENT_API,
    "pgtq.aio": CLIENT_API,
    "pgtq.integrations": CLIENT_API,
    "pgtq.worker": WORKER_RUNTIME,
    "pgtq.cli": CLI,
    # the web dashboard: a top layer beside the command line
    "pgtq.dashboard": CLI,
}

SQL_START = re.compile(
    r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH|LISTEN|UNLISTEN|NOTIFY|ALTER|CREATE|DROP|TRUNCATE"
    r"|GRANT|REVOKE|SET|RESET|BEGIN|COMMIT|ROLLBACK|CALL|DO|COPY|VACUUM|ANALYZE)\s"
)


@dataclass(frozen=True)
class Import:
    target: str  # a dotted module name, as written
    names: tuple[str, ...]  # for `from target import names`; empty for `import target`
    line: int


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ["pgtq", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(root: Path = PACKAGE) -> dict[str, ast.Module]:
    """Every module of the package, parsed, by dotted name."""
    return {module_name(path, root): ast.parse(path.read_text(), str(path)) for path in root.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, except the bodies of ``if TYPE_CHECKING:`` blocks."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.If) and _is_type_checking(child):
            yield from (node for branch in child.orelse for node in (branch, *runtime_nodes(branch)))
            continue
        yield child
        yield from runtime_nodes(child)


def imports(name: str, tree: ast.Module) -> Iterator[Import]:
    package = name if _is_package(name) else name.rpartition(".")[0]
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield Import(base, tuple(alias.name for alias in node.names), node.lineno)


def _is_package(name: str) -> bool:
    return PACKAGE.joinpath(*name.split(".")[1:], "__init__.py").exists()


def dependencies(name: str, tree: ast.Module, modules: set[str]) -> set[str]:
    """The pgtq modules ``name`` depends on (rule 1)."""
    found = set()
    for imported in imports(name, tree):
        if imported.names:
            for member in imported.names:
                candidate = f"{imported.target}.{member}"
                found.add(candidate if candidate in modules else imported.target)
        else:
            found.add(imported.target)
    return {module for module in found if module in modules and module != name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that ends where it starts), or None."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def layer_of(name: str) -> int | None:
    """The layer of a module: that of the longest prefix LAYERS names."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return LAYERS[prefix]
    return None


def psycopg_uses(tree: ast.Module) -> list[str]:
    """The runtime uses of psycopg that are not its exception classes (rule 3)."""
    bad = []
    bound: set[str] = set()
    for node in runtime_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "psycopg" or alias.name.startswith("psycopg."):
                    if alias.name not in ("psycopg", "psycopg.errors"):
                        bad.append(f"line {node.lineno}: import {alias.name}")
                    elif alias.name == "psycopg":
                        bound.add(alias.asname or "psycopg")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "psycopg":
            if node.module == "psycopg.errors":
                continue
            for alias in node.names:
                if node.module != "psycopg" or not _error_name(alias.name):
                    bad.append(f"line {node.lineno}: from {node.module} import {alias.name}")
    for node in runtime_nodes(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound
            and not _error_name(node.attr)
        ):
            bad.append(f"line {node.lineno}: psycopg.{node.attr}")
    return bad


def _error_name(name: str) -> bool:
    return name == "errors" or name.endswith("Error")


def sql_strings(tree: ast.Module) -> list[str]:
    """String literals, docstrings aside, that begin like SQL (rule 4)."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and SQL_START.match(node.value)
        ):
            found.append(f"line {node.lineno}: {node.value[:60]!r}")
    return found


# -- the rules, on pgtq/ ---------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(name for name in sources() if layer_of(name) is None)
    assert unplaced == [], f"add these modules to a layer in LAYERS: {unplaced}"


def test_no_import_cycle() -> None:
    parsed = sources()
    graph = {name: dependencies(name, tree, set(parsed)) for name, tree in parsed.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


def test_imports_go_down_the_layers_only() -> None:
    parsed = sources()
    upward = [
        f"{name} (layer {layer_of(name)}) imports {target} (layer {layer_of(target)})"
        for name, tree in parsed.items()
        for target in sorted(dependencies(name, tree, set(parsed)))
        if (layer_of(target) or 0) > (layer_of(name) or 0)
    ]
    assert upward == []


def outside_the_engine(check: Callable[[ast.Module], list[str]]) -> dict[str, list[str]]:
    """What ``check`` finds in each module outside pgtq/_db/ (rules 3 and 4)."""
    return {
        name: found
        for name, tree in sources().items()
        if not name.startswith("pgtq._db") and (found := check(tree))
    }


def test_only_the_sql_engine_uses_psycopg_to_reach_the_database() -> None:
    assert outside_the_engine(psycopg_uses) == {}


def test_only_the_sql_engine_holds_sql() -> None:
    assert outside_the_engine(sql_strings) == {}


def test_the_sql_engine_holds_the_statements() -> None:
    """Rule 4 looks at the right thing: the statements module is full of SQL."""
    assert len(sql_strings(sources()["pgtq._db.statements"])) >= 15


# -- the checks themselves catch what they are for -------------------------------


def _parse(source: str) -> ast.Module:
    return ast.parse(source)


def test_the_checks_catch_a_cycle_and_an_upward_import() -> None:
    graph = {"pgtq.cli": {"pgtq.worker._child"}, "pgtq.worker._child": {"pgtq.cli"}}
    assert find_cycle(graph) == ["pgtq.cli", "pgtq.worker._child", "pgtq.cli"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    tree = _parse("def child_main():\n    from pgtq.cli import load_queue\n")
    assert dependencies("pgtq.worker._child", tree, {"pgtq.cli"}) == {"pgtq.cli"}
    assert layer_of("pgtq.worker._child") == WORKER_RUNTIME > CLIENT_API == layer_of("pgtq.queue")
    hidden = _parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pgtq.cli import x\n")
    assert dependencies("pgtq.queue", hidden, {"pgtq.cli"}) == set()


def test_the_checks_catch_psycopg_and_sql_outside_the_engine() -> None:
    assert psycopg_uses(_parse("import psycopg\nconn = psycopg.connect('')\n")) == ["line 2: psycopg.connect"]
    assert psycopg_uses(_parse("from psycopg.rows import dict_row\n")) == [
        "line 1: from psycopg.rows import dict_row"
    ]
    catching = "import psycopg\ntry:\n    pass\nexcept psycopg.OperationalError:\n    pass\n"
    assert psycopg_uses(_parse(catching)) == []
    assert psycopg_uses(_parse("if TYPE_CHECKING:\n    import psycopg\nx: psycopg.Connection\n")) == []
    assert sql_strings(_parse('"""SELECT in a docstring is prose."""\nQ = "SELECT pgtq.version()"\n')) == [
        "line 2: 'SELECT pgtq.version()'"
    ]
    assert sql_strings(_parse('logger.info("tick moved %d jobs")\n')) == []


def test_the_async_gateway_runs_the_same_queries() -> None:
    """No second copy of SQL for asyncio: the async gateway holds no SQL
    string, names only statements the sync gateway names too, and each of
    its calls is built from a builder of queries.py, as the sync one's."""
    parsed = sources()
    asynchronous = parsed["pgtq._db.async_gateway"]
    assert sql_strings(asynchronous) == []

    def statement_names(tree: ast.Module) -> set[str]:
        return {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "statements"
        }

    assert statement_names(asynchronous) <= statement_names(parsed["pgtq._db.gateway"])

    def built_from_queries(tree: ast.Module) -> dict[str, str]:
        return {
            node.targets[0].id: node.value.args[0].attr
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "_runs"
            and isinstance(node.value.args[0], ast.Attribute)
        }

    async_calls = built_from_queries(asynchronous)
    sync_calls = built_from_queries(parsed["pgtq._db.gateway"])
    assert len(async_calls) >= 10
    assert {name: sync_calls.get(name) for name in async_calls} == async_calls
