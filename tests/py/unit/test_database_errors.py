"""How the worker carries on after a database error: which errors replace
its connection and which keep it, and the one line it logs. Errors are
built as psycopg raises them (its class per SQLSTATE); no database."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors as pg_errors

from pgtq.errors import ConnectionFailedError, PermissionDeniedError, translate
from pgtq.worker._decisions import reconnect_needed
from pgtq.worker._link import describe, sqlstate_of


@pytest.mark.parametrize(
    ("error", "reconnect"),
    [
        (pg_errors.AdminShutdown("terminating connection due to administrator command"), True),
        (pg_errors.CrashShutdown("crash"), True),
        (pg_errors.CannotConnectNow("the database system is starting up"), True),
        (pg_errors.TooManyConnections("too many connections for role"), True),
        (pg_errors.ReadOnlySqlTransaction("cannot execute UPDATE in a read-only transaction"), True),
        (pg_errors.DuplicatePreparedStatement('prepared statement "_pg3_0" already exists'), True),
        (pg_errors.InvalidSqlStatementName('prepared statement "_pg3_2" does not exist'), True),
        (pg_errors.FeatureNotSupported("cached plan must not change result type"), True),
        (pg_errors.ConnectionFailure("lost"), True),
        (pg_errors.InvalidPassword("password authentication failed"), True),
        (psycopg.OperationalError("consuming input failed: server closed the connection"), True),
        (pg_errors.SerializationFailure("could not serialize access"), False),
        (pg_errors.DeadlockDetected("deadlock detected"), False),
        (pg_errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (pg_errors.LockNotAvailable("could not obtain lock"), False),
        (pg_errors.RaiseException("a trigger said no"), False),
        (pg_errors.InternalError_("XX000"), False),
    ],
)
def test_which_errors_replace_the_connection(error: psycopg.Error, reconnect: bool) -> None:
    assert reconnect_needed(sqlstate_of(error), connection_usable=True) is reconnect


def test_any_error_replaces_a_connection_that_is_no_longer_usable() -> None:
    assert reconnect_needed("40001", connection_usable=False)
    assert reconnect_needed(None, connection_usable=True), "no SQLSTATE: the client lost the server"


def test_the_sqlstate_of_a_pgtq_error_is_its_cause() -> None:
    try:
        try:
            raise pg_errors.InsufficientPrivilege("permission denied for function pop")
        except psycopg.Error as cause:
            raise PermissionDeniedError("permission denied for function pop (grant ...)") from cause
    except PermissionDeniedError as error:
        assert sqlstate_of(error) == "42501"
        assert (
            describe(error) == "InsufficientPrivilege [42501]: permission denied for function pop (grant ...)"
        )
    assert sqlstate_of(ConnectionFailedError("lost")) is None


def test_an_error_is_described_in_one_line() -> None:
    error = pg_errors.SerializationFailure("could not serialize access\nCONTEXT: PL/pgSQL function")
    assert describe(error) == "SerializationFailure [40001]: could not serialize access"


@pytest.mark.parametrize(
    ("error", "lost"),
    [
        (psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"), True),
        (pg_errors.AdminShutdown("terminating connection due to administrator command"), True),
        (pg_errors.ConnectionFailure("connection failure"), True),
        (pg_errors.SerializationFailure("could not serialize access"), False),
        (pg_errors.DeadlockDetected("deadlock detected"), False),
        (pg_errors.QueryCanceled("canceling statement due to statement timeout"), False),
        (pg_errors.LockNotAvailable("could not obtain lock"), False),
    ],
)
def test_only_a_lost_connection_becomes_connection_failed(error: psycopg.Error, lost: bool) -> None:
    """psycopg files statement-level failures under OperationalError too:
    they keep their own class (a producer may retry a serialization failure)."""
    assert isinstance(translate(error), ConnectionFailedError) is lost
