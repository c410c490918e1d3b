"""The web dashboard: pgtq's admin panel (``pip install 'pgtq[dashboard]'``).

A small ASGI app (Starlette, server-rendered Jinja2 templates, charts as
inline SVG, no JavaScript) that shows every queue, its jobs, schedules and
workers, and serves ``/metrics``; with an admin DSN it also retries,
cancels and deletes jobs. It sits at the top of pgtq's layers, beside the
command line: every SQL call goes through the gateway (``pgtq._db``).

    from pgtq.dashboard import serve
    serve("dbname=app user=pgtq_dashboard", admin_dsn="dbname=app user=pgtq_ops")

or ``python -m pgtq.dashboard --help``. docs/operations.md "Dashboard" and SECURITY.md
describe the roles, the token and the read-only mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

try:
    import jinja2  # noqa: F401
    import psycopg_pool  # noqa: F401
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"the pgtq dashboard needs its extra packages ({error.name} is missing):"
        " pip install 'pgtq[dashboard]'"
    ) from error

from pgtq.dashboard._config import (
    ADMIN_POOL_SIZE,
    DEFAULT_HOST,
    DEFAULT_PORT,
    READ_POOL_SIZE,
    DashboardConfig,
)

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["DashboardConfig", "create_app", "serve"]


def create_app(config: DashboardConfig) -> Starlette:
    """The dashboard's ASGI app, for any ASGI server. It checks the
    database and the roles of ``config`` and opens its connection pools
    now (raising a ``pgtq.PgTqError`` naming the problem); the app closes
    them at the end of its lifespan."""
    from pgtq.dashboard._app import create_app as build
    from pgtq.dashboard._backend import Backend

    return build(config, Backend(config))


def serve(
    dsn: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    read_only: bool = False,
    token: str | None = None,
    admin_dsn: str | None = None,
    allowed_hosts: Sequence[str] = (),
    pool_size: int = READ_POOL_SIZE,
    admin_pool_size: int = ADMIN_POOL_SIZE,
    secure_cookies: bool = False,
    log_level: str = "info",
) -> None:
    """Run the dashboard until SIGINT or SIGTERM (uvicorn).

    ``dsn``: the database, as a login role granted ``pgtq_observer``
    (everything the pages show is read with it). ``admin_dsn``: a login
    role granted ``pgtq_admin``, for the actions; without it, or with
    ``read_only``, there are none. ``host``: 127.0.0.1 by default; any
    address other than loopback needs ``token`` (at least 16 characters),
    which every request must then carry (HTTP Basic password or Bearer).
    ``allowed_hosts``: more Host header names to serve (on loopback only
    loopback names are served). ``secure_cookies``: mark the session cookie
    Secure (behind HTTPS). ``pool_size`` / ``admin_pool_size``: connections
    of the two pools (default 4 and 2).

    Raises ``ValueError`` for bad settings (a public bind without a token)
    and ``pgtq.PgTqError`` when the database, its schema or a role is not
    as needed, before it starts listening.
    """
    import uvicorn

    config = DashboardConfig(
        dsn=dsn,
        admin_dsn=admin_dsn,
        host=host,
        port=port,
        read_only=read_only,
        token=token,
        allowed_hosts=tuple(allowed_hosts),
        pool_size=pool_size,
        admin_pool_size=admin_pool_size,
        secure_cookies=secure_cookies,
    )
    app = create_app(config)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False, proxy_headers=False)
