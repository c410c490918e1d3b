"""Install or upgrade the pgtq schema in a database.

Two routes install the very same SQL files of ``sql/``:

* the extension route: ``CREATE EXTENSION pgtq`` (files installed into the
  server with ``make install-extension``), upgraded by ``ALTER EXTENSION``;
* the alembic route (``migrations/``), for managed servers where extensions
  cannot be added: ``pgtq migrate DSN`` or :func:`upgrade`.

``upgrade`` picks the route the database already uses, and is idempotent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.exc import DBAPIError

from pgtq._db import gateway
from pgtq._db.schema import known_versions, migrations_dir, parse_version, schema_version
from pgtq.errors import PgTqError


@dataclass(frozen=True)
class MigrationResult:
    """What ``upgrade`` did: the route, and the version before and after."""

    route: str
    before: str | None
    after: str


def upgrade(dsn: str, version: str | None = None) -> MigrationResult:
    """Bring the database at ``dsn`` to the newest pgtq schema version, or
    to ``version`` (a release between the installed one and the newest, for
    a step-by-step upgrade). Idempotent; never goes back."""
    with gateway.connect(dsn) as conn:
        before = gateway.installed_version(conn)
        _check_target(version, before)
        if gateway.extension_version(conn) is not None:
            gateway.update_extension(conn, version)
            return MigrationResult("extension", before, str(gateway.installed_version(conn)))
    try:
        _alembic_upgrade(dsn, "head" if version is None else "pgtq_" + version.replace(".", "_"))
    except DBAPIError as error:  # e.g. no right to create the schema: say so, no traceback
        reason = error.orig.diag.message_primary if isinstance(error.orig, psycopg.Error) else None
        raise PgTqError(f"cannot install the pgtq schema: {reason or str(error.orig).strip()}") from error
    with gateway.connect(dsn) as conn:
        after = gateway.installed_version(conn)
    return MigrationResult("alembic", before, after or schema_version())


def alembic_version_location() -> Path:
    """The folder of pgtq's alembic revisions, for an application that keeps
    them in its own alembic history (``version_locations``). They form the
    branch ``pgtq`` (its first revision's label); an application revision
    that needs pgtq names ``depends_on = "pgtq_0_1_0"`` (or a later one). In
    an ``alembic.ini`` the same folder is ``pgtq:_data/migrations/versions``
    (pgtq installed from a wheel)."""
    return migrations_dir() / "versions"


def _check_target(version: str | None, installed: str | None) -> None:
    """Refuse a target version this package does not know, or one below the
    installed version, before anything is run."""
    if version is None:
        return
    known = known_versions()
    if version not in known:
        raise PgTqError(f"unknown pgtq schema version {version!r}; this package knows {', '.join(known)}")
    if installed is not None and parse_version(version) < parse_version(installed):
        raise PgTqError(f"the database has pgtq schema {installed}; pgtq does not downgrade to {version}")


def _alembic_upgrade(dsn: str, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["dsn"] = dsn
    command.upgrade(config, revision)
