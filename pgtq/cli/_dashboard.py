"""``dashboard``: the web dashboard (the extra ``pgtq[dashboard]``)."""

from __future__ import annotations

import importlib

import click

from pgtq.cli._common import (
    Unavailable,
    _dsn_or_env,
    cli,
    dsn_option,
)

DASHBOARD_MISSING = "the dashboard needs the extra pgtq[dashboard]: pip install 'pgtq[dashboard]'"


@cli.command(
    help="Serve the web dashboard. It reads with --dsn (give it a pgtq_observer login) and acts with "
    "--admin-dsn (a pgtq_admin login; none: read-only). It binds to 127.0.0.1; another address needs "
    "--token."
)
@dsn_option
@click.option("--admin-dsn", envvar="PGTQ_ADMIN_DSN", help="database for actions (default $PGTQ_ADMIN_DSN)")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--read-only", is_flag=True, help="no actions at all")
@click.option("--token", envvar="PGTQ_DASHBOARD_TOKEN", help="required to bind to a non-loopback address")
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="another Host name to serve (repeatable)",
)
@click.option(
    "--pool-size", type=click.IntRange(1, 100), default=4, show_default=True, help="reading connections"
)
@click.option(
    "--admin-pool-size",
    type=click.IntRange(1, 100),
    default=2,
    show_default=True,
    help="connections for actions",
)
@click.option("--secure-cookies", is_flag=True, help="mark the session cookie Secure (behind an HTTPS proxy)")
def dashboard(
    dsn: str | None,
    admin_dsn: str | None,
    host: str,
    port: int,
    read_only: bool,
    token: str | None,
    allowed_hosts: tuple[str, ...],
    pool_size: int,
    admin_pool_size: int,
    secure_cookies: bool,
) -> int:
    chosen = _dsn_or_env(dsn)
    try:
        web = importlib.import_module("pgtq.dashboard")  # the extra's module, written apart
    except ModuleNotFoundError as error:  # the module, or a package it needs, is not installed
        missing = "" if error.name == "pgtq.dashboard" else f" ({error.name} is missing)"
        raise Unavailable(f"{DASHBOARD_MISSING}{missing}") from error
    served = web.serve(
        chosen,
        admin_dsn=admin_dsn,
        host=host,
        port=port,
        read_only=read_only,
        token=token,
        allowed_hosts=allowed_hosts,
        pool_size=pool_size,
        admin_pool_size=admin_pool_size,
        secure_cookies=secure_cookies,
    )
    return int(served or 0)
