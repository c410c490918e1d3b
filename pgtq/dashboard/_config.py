"""The dashboard's settings, checked once before it starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from pgtq.dashboard._security import allowed_host_names, check_binding

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
# Connections: the pages read through a pool of READ_POOL_SIZE (each page
# runs a handful of short queries one after another), the actions through
# one of ADMIN_POOL_SIZE. Requests beyond that wait up to POOL_WAIT seconds.
READ_POOL_SIZE = 4
ADMIN_POOL_SIZE = 2
POOL_WAIT = 10.0
READ_TIMEOUT = timedelta(seconds=10)
ACTION_TIMEOUT = timedelta(seconds=60)
PAGE_SIZE = 50


@dataclass(frozen=True)
class DashboardConfig:
    """How the dashboard runs.

    ``dsn`` is what it reads with: a login role granted ``pgtq_observer``.
    ``admin_dsn`` is what its actions (retry, cancel, delete, bulk retry)
    use: a login role granted ``pgtq_admin``; without it, or with
    ``read_only``, it has no actions at all. Bound to anything but
    loopback it needs ``token``.
    """

    dsn: str
    admin_dsn: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    read_only: bool = False
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    pool_size: int = READ_POOL_SIZE
    admin_pool_size: int = ADMIN_POOL_SIZE
    page_size: int = PAGE_SIZE
    secure_cookies: bool = False
    read_timeout: timedelta = field(default=READ_TIMEOUT)
    action_timeout: timedelta = field(default=ACTION_TIMEOUT)

    def __post_init__(self) -> None:
        if not self.dsn:
            raise ValueError("no database given: pass a DSN (--dsn) or set PGTQ_DSN")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {self.port}")
        for name in ("pool_size", "admin_pool_size", "page_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        check_binding(self.host, self.token)

    @property
    def actions_enabled(self) -> bool:
        """Whether the dashboard offers actions: not read-only, and an admin DSN given."""
        return not self.read_only and self.admin_dsn is not None

    @property
    def host_names(self) -> frozenset[str] | None:
        """The Host header names it serves (None: any)."""
        return allowed_host_names(self.host, self.allowed_hosts)
