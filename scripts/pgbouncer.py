#!/usr/bin/env python3
"""Start and stop a local PgBouncer in front of a PostgreSQL server, for
pgtq's tests, the chaos suite and the bench (Debian's ``pgbouncer`` package).

Standard library only, like pgcluster.py. PgBouncer refuses to run as
root: as root it runs as the ``postgres`` user. It listens on 127.0.0.1 on
a free port, reaches the server over TCP, lets any database through (the
``*`` entry: a client's dbname is the server's), and trusts the users it
is told about (the server's own authentication still applies). It is
stopped by its pid.

    bouncer = Bouncer(Path("/tmp/b"), server_port=5432, pool_mode="transaction")
    bouncer.start(); dsn = bouncer.dsn("app"); ...; bouncer.restart(); ...; bouncer.stop()
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pgcluster import SERVER_USER, free_port, give_to_server_user, log, process_alive, running_as_root

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@dataclass
class Bouncer:
    """A PgBouncer whose files live in ``workdir``.

    ``pool_mode``: ``transaction`` (a server connection per transaction)
    or ``session``. ``pool_size``: server connections per database and
    user. ``users``: the login names it lets through.
    """

    workdir: Path
    server_port: int
    server_host: str = "127.0.0.1"
    pool_mode: str = "transaction"
    pool_size: int = 20
    max_client_conn: int = 1000
    users: tuple[str, ...] = (SERVER_USER,)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.workdir / "pgbouncer.ini"

    @property
    def logfile(self) -> Path:
        return self.workdir / "pgbouncer.log"

    def dsn(self, dbname: str, user: str = SERVER_USER) -> str:
        """The DSN of database ``dbname`` through this bouncer."""
        return f"host=127.0.0.1 port={self.port} user={user} dbname={dbname}"

    def write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        give_to_server_user(self.workdir)
        users = self.workdir / "users.txt"
        users.write_text("".join(f'"{user}" ""\n' for user in self.users))
        self.config.write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={self.server_host} port={self.server_port}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {users}",
                    f"pool_mode = {self.pool_mode}",
                    f"default_pool_size = {self.pool_size}",
                    f"max_client_conn = {self.max_client_conn}",
                    "ignore_startup_parameters = extra_float_digits",
                    f"logfile = {self.logfile}",
                    "log_connections = 0",
                    "log_disconnections = 0",
                    "",
                ]
            )
        )
        for path in (users, self.config):
            give_to_server_user(path)

    def start(self, timeout: float = 30.0) -> None:
        """Start it (in the foreground, a child of this process) and wait
        until it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return
        self.write_config()
        self.process = subprocess.Popen(
            [PGBOUNCER, str(self.config)],
            user=SERVER_USER if running_as_root() else None,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C of the test run is the run's to handle
        )
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}: see {self.logfile}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pgbouncer did not accept connections within {timeout} s")
            time.sleep(0.02)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """Stop it by its pid: SIGTERM (immediate shutdown: every client
        connection is cut), then SIGKILL."""
        if self.process is None:
            return
        pid = self.process.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=timeout)
                break
            except subprocess.TimeoutExpired:
                log(f"pgbouncer pid {pid} still running after {sig.name}")
        if process_alive(pid):
            log(f"pgbouncer pid {pid} did not stop")
        self.process = None

    def restart(self) -> None:
        """Stop it and start it again on the same port: every client loses
        its connection, as in a bouncer upgrade or crash."""
        self.stop()
        self.start()

    def __enter__(self) -> Bouncer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
