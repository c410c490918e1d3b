"""Worker runtime: the dispatcher's link to one database: its connection,
and how the worker carries on when the database fails it.

Every database error that reaches the dispatcher comes here (``failed``):
it is logged in one line, the connection is replaced when it must be (see
``reconnect_needed``), and the database is left alone for a wait that
doubles with each error in a row, up to a cap (``Backoff``). The
dispatcher keeps the outcomes it could not write and writes them once the
database answers again: a job whose lease ran out meanwhile refuses them,
so writing again is safe. Only the first connection at start lets errors
through (a bad DSN, a missing or unknown schema version): they are
configuration errors, and the worker exits with their message. A
reconnection that finds a newer schema (the database was upgraded while the
worker ran: a rolling upgrade) goes on with a warning naming both versions;
an older one is refused like any failed connection.

A worker whose queues live on several servers holds one link per server
(``_server.py``); each backs off on its own, and its log lines start with
the server's name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg

from pgtq._db import gateway
from pgtq._db.schema import schema_version
from pgtq.database import check_schema
from pgtq.errors import PgTqError
from pgtq.worker._decisions import Backoff, Clock, reconnect_needed

if TYPE_CHECKING:
    Connection = psycopg.Connection[Any]

logger = logging.getLogger("pgtq.worker")

# What a call to the database may raise: pgtq's translations, or psycopg's own.
DATABASE_ERRORS = (PgTqError, psycopg.Error)


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of a database error, or of the psycopg error a pgtq
    error was raised from; None when there is none (a lost connection)."""
    for candidate in (error, error.__cause__):
        state = getattr(candidate, "sqlstate", None)
        if isinstance(state, str):
            return state
    return None


def unreachable(error: BaseException) -> bool:
    """Whether a failed connection found no server to talk to (down,
    restarting, or a wrong host or port), rather than a malformed DSN."""
    return isinstance(error.__cause__, psycopg.OperationalError)


def describe(error: BaseException) -> str:
    """One line naming a database error: its class, SQLSTATE and message."""
    cause = error.__cause__ if isinstance(error, PgTqError) and error.__cause__ is not None else error
    state = sqlstate_of(error)
    lines = str(error).strip().splitlines() or [""]
    return f"{type(cause).__name__}{f' [{state}]' if state else ''}: {lines[0]}"


class DatabaseLink:
    """The connection of a dispatcher to the database at ``dsn``.

    ``open()`` connects at start and lets every error through. Later,
    ``ready(now)`` says whether the database may be used (reconnecting when
    a reconnection is due), ``use()`` gives the connection for a call,
    ``failed(error)`` handles an error of a call, and ``settled()`` reports
    the end of a round of calls without error. ``on_connect`` runs on every
    new connection (the worker registers itself). ``name``, when given,
    starts each of its log lines (the server, for a worker with several).
    """

    def __init__(
        self,
        dsn: str,
        *,
        clock: Clock,
        max_delay: float,
        on_connect: Callable[[Connection], None],
        name: str = "",
    ) -> None:
        self.dsn = dsn
        self._prefix = f"{name}: " if name else ""
        self.conn: Connection | None = None
        self.backoff = Backoff(max_delay)
        self._clock = clock
        self._on_connect = on_connect
        self._used = False
        self._failing = False

    def open(self, *, reconnecting: bool = False) -> None:
        """Connect and check the schema; raises on any error. At start a
        schema newer than the package's is refused; ``reconnecting``, the
        worker goes on with it (the database was upgraded while it ran:
        every upgrade keeps the calls of the release before it working),
        and says so."""
        conn = gateway.connect(self.dsn)
        try:
            installed = check_schema(conn, allow_newer=reconnecting)
        except BaseException:
            conn.close()
            raise
        self.conn = conn
        if installed != schema_version():
            logger.warning(
                "%sthe database now has pgtq schema %s, newer than %s that this worker was written for "
                "(it was upgraded while the worker ran): the worker goes on with the calls of %s, which "
                "the upgrade keeps working, but a worker of this version would refuse to start; deploy "
                "workers of the pgtq package for schema %s",
                self._prefix,
                installed,
                schema_version(),
                schema_version(),
                installed,
            )

    def waiting(self, now: float) -> bool:
        """Whether the link waits after an error (see ``backoff``)."""
        return not self.backoff.due(now)

    def ready(self, now: float) -> bool:
        """Whether the database may be used now: not waiting after an
        error, and connected (a due reconnection is tried here)."""
        if self.waiting(now):
            return False
        if self.conn is None:
            return self._reconnect(now)
        return True

    def use(self) -> Connection:
        """The connection, for a call (only after ``ready``)."""
        assert self.conn is not None
        self._used = True
        return self.conn

    def settled(self) -> None:
        """A round of calls ended without error: if any call was made, the
        database works, and the next error waits the first delay again."""
        if self._used:
            if self._failing:
                logger.info("%sdatabase calls work again", self._prefix)
            self._failing = False
            self.backoff.succeeded()
        self._used = False

    def failed(self, error: BaseException) -> None:
        """Handle a database error of a call: log it in one line, replace
        the connection if needed, and wait before the next attempt."""
        self._used = False
        self._failing = True
        usable = self.conn is not None and gateway.usable(self.conn)
        reconnect = reconnect_needed(sqlstate_of(error), connection_usable=usable)
        wait = self.backoff.failed(self._clock())
        if reconnect:
            logger.warning(
                "%sdatabase connection lost (%s); reconnecting in %.1f s", self._prefix, describe(error), wait
            )
        else:
            logger.warning(
                "%sdatabase error (%s); trying again in %.1f s", self._prefix, describe(error), wait
            )
        if reconnect:
            self.close()

    def postpone(self, error: BaseException) -> None:
        """The first connection failed, and the worker starts anyway (it
        serves other servers): connect after the first backoff wait."""
        self._failing = True
        wait = self.backoff.failed(self._clock())
        logger.warning(
            "%scannot be reached at start (%s); serving the other servers, next try in %.1f s",
            self._prefix,
            describe(error),
            wait,
        )

    def _reconnect(self, now: float) -> bool:
        try:
            self.open(reconnecting=True)
            assert self.conn is not None
            self._on_connect(self.conn)
        except DATABASE_ERRORS as error:
            self.close()
            wait = self.backoff.failed(now)
            logger.warning(
                "%scould not reconnect (%s); next try in %.1f s", self._prefix, describe(error), wait
            )
            return False
        logger.info("%sreconnected", self._prefix)
        return True

    def close(self) -> None:
        """Close the connection (a later ``ready`` reconnects)."""
        if self.conn is not None:
            self.conn.close()
        self.conn = None
