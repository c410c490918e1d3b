"""Where pgtq's SQL files live, and which schema version they install.

The SQL in ``sql/`` is the one source of truth. In a source checkout it is
read from the repository; an installed wheel carries a copy of the same
files under ``pgtq/_sql`` (and the control file, which names the version).
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent
_CHECKOUT_DIR = _PACKAGE_DIR.parent


def _first_existing(*candidates: Path) -> Path:
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"none of {', '.join(map(str, candidates))} exists")


@cache
def sql_dir() -> Path:
    """The folder holding ``pgtq--X.sql`` and ``pgtq--A--B.sql``."""
    return _first_existing(_PACKAGE_DIR / "_sql", _CHECKOUT_DIR / "sql")


@cache
def migrations_dir() -> Path:
    """The alembic script folder (``migrations/``)."""
    return _first_existing(_PACKAGE_DIR / "_migrations", _CHECKOUT_DIR / "migrations")


@cache
def control_file() -> Path:
    return _first_existing(_PACKAGE_DIR / "_sql" / "pgtq.control", _CHECKOUT_DIR / "pgtq.control")


@cache
def schema_version() -> str:
    """The newest SQL version this package installs: the control file's
    ``default_version``."""
    text = control_file().read_text()
    match = re.search(r"^\s*default_version\s*=\s*'([^']+)'", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{control_file()} has no default_version")
    return match.group(1)


def sql_file(name: str) -> Path:
    """A script of ``sql/`` by file name, e.g. ``pgtq--0.1.0.sql``."""
    path = sql_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"pgtq SQL script {path} is missing")
    return path


def parse_version(version: str) -> tuple[int, ...]:
    """``'0.10.2'`` -> ``(0, 10, 2)`` for ordering versions."""
    return tuple(int(part) for part in version.split("."))
