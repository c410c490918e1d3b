"""SQL-engine layer: where pgtq's SQL files live, and which schema version they install.

The SQL in ``sql/`` is the one source of truth. In a source checkout it is
read from the repository; an installed wheel carries the same files as
package data under ``pgtq/_data/`` (``sql/``, ``migrations/`` and the
control file, which names the version), found with importlib.resources.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

_CHECKOUT_DIR = Path(__file__).resolve().parents[2]


def _package_data(name: str) -> Path | None:
    """``pgtq/_data/<name>`` of an installed wheel, or None in a checkout."""
    candidate = resources.files("pgtq") / "_data" / name
    return Path(str(candidate)) if candidate.is_file() or candidate.is_dir() else None


def _locate(name: str, checkout_path: Path) -> Path:
    path = _package_data(name) or checkout_path
    if not path.exists():
        raise FileNotFoundError(f"pgtq's {name} is missing (looked in the package and in {checkout_path})")
    return path


@cache
def sql_dir() -> Path:
    """The folder holding ``pgtq.sql``, ``pgtq--X.sql`` and ``pgtq--A--B.sql``."""
    return _locate("sql", _CHECKOUT_DIR / "sql")


@cache
def migrations_dir() -> Path:
    """The alembic script folder (``migrations/``)."""
    return _locate("migrations", _CHECKOUT_DIR / "migrations")


@cache
def control_file() -> Path:
    """``pgtq.control``, whose ``default_version`` is the schema version."""
    return _locate("pgtq.control", _CHECKOUT_DIR / "pgtq.control")


@cache
def schema_version() -> str:
    """The newest SQL version this package installs: the control file's
    ``default_version``."""
    text = control_file().read_text()
    match = re.search(r"^\s*default_version\s*=\s*'([^']+)'", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{control_file()} has no default_version")
    return match.group(1)


def known_versions() -> list[str]:
    """Every schema version this package can install, oldest first: the
    oldest release (its full script) and the target of each upgrade script."""
    versions = set()
    for path in sql_dir().glob("pgtq--*.sql"):
        versions.add(path.name.removesuffix(".sql").split("--")[-1])
    return sorted(versions, key=parse_version)


def sql_file(name: str) -> Path:
    """A script of ``sql/`` by file name, e.g. ``pgtq--0.1.0.sql``."""
    path = sql_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"pgtq SQL script {path} is missing")
    return path


def parse_version(version: str) -> tuple[int, ...]:
    """``'0.10.2'`` -> ``(0, 10, 2)`` for ordering versions."""
    return tuple(int(part) for part in version.split("."))
