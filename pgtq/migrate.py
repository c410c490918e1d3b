"""Install or upgrade the pgtq schema in a database.

Two routes install the very same SQL files of ``sql/``:

* the extension route: ``CREATE EXTENSION pgtq`` (files installed into the
  server with ``make install-extension``), upgraded by ``ALTER EXTENSION``;
* the alembic route (``migrations/``), for managed servers where extensions
  cannot be added: ``pgtq migrate DSN`` or :func:`upgrade`.

``upgrade`` picks the route the database already uses, and is idempotent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psycopg
from sqlalchemy.exc import DBAPIError

from pgtq._db import gateway
from pgtq._db.schema import known_versions, migrations_dir, parse_version, schema_version
from pgtq.errors import PgTqError

logger = logging.getLogger("pgtq")
T = TypeVar("T")

# An upgrade under load can meet workers that hold a pgtq table (deadlock
# detected, 40P01, or its lock wait timed out, 55P03). Its transaction is
# then rolled back whole, so it is tried again, after these waits (seconds).
RETRY_WAITS = (0.5, 1.0, 2.0, 4.0)
_BUSY_STATES = {"40P01", "55P03"}


@dataclass(frozen=True)
class MigrationResult:
    """What ``upgrade`` did: the route, and the version before and after."""

    route: str
    before: str | None
    after: str


def upgrade(dsn: str, version: str | None = None) -> MigrationResult:
    """Bring the database at ``dsn`` to the newest pgtq schema version, or
    to ``version`` (a release between the installed one and the newest, for
    a step-by-step upgrade). Idempotent; never goes back.

    Safe while workers run (a rolling upgrade, README): the upgrade's one
    transaction takes every pgtq table at once before it changes anything,
    waits at most 5 s for each lock, and is tried again, whole, when it
    meets busy workers (see RETRY_WAITS); workers wait for it meanwhile."""
    with gateway.connect(dsn) as conn:
        before = gateway.installed_version(conn)
        _check_target(version, before)
        extension = gateway.extension_version(conn) is not None
    if extension:
        with gateway.connect(dsn) as conn:
            _retrying_when_busy(lambda: gateway.update_extension(conn, version))
            return MigrationResult("extension", before, str(gateway.installed_version(conn)))
    revision = "head" if version is None else "pgtq_" + version.replace(".", "_")
    try:
        _retrying_when_busy(lambda: _alembic_upgrade(dsn, revision))
    except DBAPIError as error:  # e.g. no right to create the schema: say so, no traceback
        reason = error.orig.diag.message_primary if isinstance(error.orig, psycopg.Error) else None
        raise PgTqError(f"cannot install the pgtq schema: {reason or str(error.orig).strip()}") from error
    with gateway.connect(dsn) as conn:
        after = gateway.installed_version(conn)
    return MigrationResult("alembic", before, after or schema_version())


def _busy(error: BaseException) -> bool:
    """Whether an upgrade failed because workers held what it needed."""
    cause = error.orig if isinstance(error, DBAPIError) else error
    return isinstance(cause, psycopg.Error) and cause.sqlstate in _BUSY_STATES


def _retrying_when_busy(upgrade_once: Callable[[], T]) -> T:
    """Run the upgrade, again after each wait of RETRY_WAITS while it meets
    busy workers (its transaction changed nothing then)."""
    for wait in RETRY_WAITS:
        try:
            return upgrade_once()
        except (psycopg.Error, DBAPIError) as error:
            if not _busy(error):
                raise
            logger.warning(
                "pgtq upgrade: the tables are busy (%s); nothing was changed, trying again in %.1f s",
                str(error.orig if isinstance(error, DBAPIError) else error).strip().splitlines()[0],
                wait,
            )
            time.sleep(wait)
    return upgrade_once()


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
