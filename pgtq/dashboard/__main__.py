"""``python -m pgtq.dashboard``: run the dashboard from the command line
(the ``pgtq dashboard`` command calls the same ``pgtq.dashboard.serve``)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from pgtq.dashboard import serve
from pgtq.dashboard._config import ADMIN_POOL_SIZE, DEFAULT_HOST, DEFAULT_PORT, READ_POOL_SIZE
from pgtq.errors import PgTqError

TOKEN_VARIABLE = "PGTQ_DASHBOARD_TOKEN"
ADMIN_DSN_VARIABLE = "PGTQ_ADMIN_DSN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pgtq.dashboard",
        description="Run pgtq's web dashboard. It reads with --dsn (a login role granted pgtq_observer) "
        "and acts (retry, cancel, delete) with --admin-dsn (a login role granted pgtq_admin); without "
        "--admin-dsn, or with --read-only, it has no actions.",
    )
    parser.add_argument(
        "--dsn", default=os.environ.get("PGTQ_DSN"), help="database to read (default $PGTQ_DSN)"
    )
    parser.add_argument(
        "--admin-dsn",
        default=os.environ.get(ADMIN_DSN_VARIABLE),
        help=f"database connection for the actions (default ${ADMIN_DSN_VARIABLE}; none: no actions)",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--read-only", action="store_true", help="no actions at all, whatever the DSNs")
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_VARIABLE),
        help=f"access token every request must carry (default ${TOKEN_VARIABLE}); needed to bind beyond "
        "loopback. Prefer the variable: a command line is visible to other users",
    )
    parser.add_argument(
        "--allowed-host", action="append", default=[], metavar="NAME", help="another Host name to serve"
    )
    parser.add_argument("--pool-size", type=int, default=READ_POOL_SIZE, help="connections for reading")
    parser.add_argument(
        "--admin-pool-size", type=int, default=ADMIN_POOL_SIZE, help="connections for the actions"
    )
    parser.add_argument(
        "--secure-cookies", action="store_true", help="mark the session cookie Secure (HTTPS)"
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        serve(
            args.dsn or "",
            host=args.host,
            port=args.port,
            read_only=args.read_only,
            token=args.token or None,
            admin_dsn=args.admin_dsn or None,
            allowed_hosts=args.allowed_host,
            pool_size=args.pool_size,
            admin_pool_size=args.admin_pool_size,
            secure_cookies=args.secure_cookies,
            log_level=args.log_level,
        )
    except ValueError as error:
        print(f"pgtq dashboard: error: {error}", file=sys.stderr)
        return 2
    except PgTqError as error:
        print(f"pgtq dashboard: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
