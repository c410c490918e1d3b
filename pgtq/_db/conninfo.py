"""SQL-engine layer: what a DSN names, read without connecting.

A worker groups its queues by server (``server_key``: two spellings of
one DSN are one server) and names each server in its logs and in
``pgtq stats`` without printing a password (``server_label``).
"""

from __future__ import annotations

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo


def _parameters(dsn: str) -> dict[str, str] | None:
    """The DSN's parameters, or None when libpq cannot read it (connecting
    then says what is wrong with it)."""
    try:
        return {key: str(value) for key, value in conninfo_to_dict(dsn).items() if value is not None}
    except psycopg.ProgrammingError:
        return None


def server_key(dsn: str) -> str:
    """The same string for every spelling of one DSN (key=value in any
    order, or a URI); the DSN itself when it cannot be read."""
    parameters = _parameters(dsn)
    if parameters is None:
        return dsn
    return make_conninfo("", **dict(sorted(parameters.items())))


def server_label(dsn: str) -> str:
    """A short name of the server and database a DSN points at, without
    its password: ``host:port/dbname``, every host of a multi-host DSN
    (``db1:5432,db2:5432/app``)."""
    parameters = _parameters(dsn)
    if parameters is None:
        return "(unreadable DSN)"
    hosts = (parameters.get("host") or parameters.get("hostaddr") or "localhost").split(",")
    ports = (parameters.get("port") or "5432").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    places = [f"{host}:{port}" for host, port in zip(hosts, ports, strict=False)]
    return f"{','.join(places)}/{parameters.get('dbname') or parameters.get('user') or ''}"
