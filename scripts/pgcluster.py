#!/usr/bin/env python3
"""Start and stop local PostgreSQL clusters for pgtq's tests and demo.

Standard library only, so it runs before the virtualenv exists.

    pgcluster.py run -- CMD...     throwaway cluster: start, run CMD with
                                   PGTQ_TEST_DSN set, stop (also on failure)
    pgcluster.py start DIR         start (or reuse) a kept cluster in DIR,
                                   print its DSN
    pgcluster.py stop DIR          stop the cluster in DIR by its pid
    pgcluster.py dsn DIR           print the DSN of the cluster in DIR

PostgreSQL refuses to run as root: as root, initdb and the server run as
the ``postgres`` user, who must be able to reach the data folder.

Tests that need a server of their own start it with ``start_throwaway``
(a second server, a primary) and ``start_standby`` (a streaming standby
of it, for failover), and stop each by its pid (``Cluster.stop``).

A throwaway cluster runs from a private install tree (see
``private_install``): the server's own programs, with an extension folder
that also holds this checkout's pgtq extension files. So ``CREATE EXTENSION
pgtq`` is always tested against the SQL of this checkout, without writing
the system's extension folder (no root needed), and checkouts side by side
never see each other's files.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PG_MAJOR = os.environ.get("PGTQ_PG_MAJOR", "15")
SYSTEM_PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
# The programs to run: the system's, or (inside `run`) the private tree's.
PG_BIN = Path(os.environ.get("PGTQ_PG_BIN", str(SYSTEM_PG_BIN)))
SERVER_USER = "postgres"

# Settings for a throwaway test cluster: speed over surviving an OS crash.
# synchronous_commit stays on: a commit is then written to the OS before it
# is acknowledged, so the tests that stop the server with `-m immediate`
# never lose a transaction that reported success (no fsync needed for that).
TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "on",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
}
# Added to TEST_SETTINGS for a cluster that runs pg_cron (tests of `pgtq cron
# install`): the library preloaded, its scheduler in one database, and its
# jobs run through the cluster's own socket (cron.host: the data folder).
CRON_DATABASE = "pgtq_cron"


def cron_settings(cluster: Cluster) -> dict[str, str]:
    """The settings of a cluster whose pg_cron schedules in CRON_DATABASE."""
    return {
        "shared_preload_libraries": "pg_cron",
        "cron.database_name": CRON_DATABASE,
        "cron.host": str(cluster.datadir),
    }


# Settings for the kept demo cluster: ordinary and durable.
KEPT_SETTINGS = {"max_connections": "100", "log_min_messages": "warning"}


def log(message: str) -> None:
    print(f"pgcluster: {message}", file=sys.stderr, flush=True)


def running_as_root() -> bool:
    return os.geteuid() == 0


def as_server_user(argv: list[str]) -> list[str]:
    """Prefix a command so it runs as the user owning the cluster."""
    if running_as_root():
        return ["runuser", "-u", SERVER_USER, "--", *argv]
    return argv


def server_user_can_reach(path: Path) -> bool:
    """Whether the server user may enter ``path`` (always true when not root)."""
    if not running_as_root():
        return True
    result = subprocess.run(as_server_user(["test", "-x", str(path)]), capture_output=True, check=False)
    return result.returncode == 0


def give_to_server_user(path: Path) -> None:
    if running_as_root():
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    """A cluster's data folder (its socket lives in the same folder), and
    the folder of the programs that run it."""

    datadir: Path
    bindir: Path = PG_BIN

    @property
    def port_file(self) -> Path:
        return self.datadir / "pgtq-port"

    @property
    def port(self) -> int:
        return int(self.port_file.read_text().strip())

    @property
    def dsn(self) -> str:
        return f"host={self.datadir} port={self.port} user={SERVER_USER} dbname=postgres"

    def pid(self) -> int | None:
        """The postmaster's pid, or None when no server runs."""
        pid_file = self.datadir / "postmaster.pid"
        try:
            pid = int(pid_file.read_text().splitlines()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def initialise(self, settings: dict[str, str]) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.datadir, 0o700)
        give_to_server_user(self.datadir)
        subprocess.run(
            as_server_user(
                [
                    str(self.bindir / "initdb"),
                    "--pgdata",
                    str(self.datadir),
                    "--username",
                    SERVER_USER,
                    "--auth",
                    "trust",
                    "--encoding",
                    "UTF8",
                    "--no-instructions",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        lines = [f"{key} = '{value}'" for key, value in settings.items()]
        lines += [
            f"port = {port}",
            "listen_addresses = '127.0.0.1'",
            f"unix_socket_directories = '{self.datadir}'",
        ]
        config = self.datadir / "postgresql.auto.conf"
        with config.open("a") as handle:
            handle.write("\n".join(lines) + "\n")
        self.port_file.write_text(f"{port}\n")
        give_to_server_user(self.port_file)

    def start(self) -> None:
        if self.pid() is not None:
            return
        subprocess.run(
            as_server_user(
                [
                    str(self.bindir / "pg_ctl"),
                    "--pgdata",
                    str(self.datadir),
                    "--log",
                    str(self.datadir / "server.log"),
                    "--wait",
                    "--timeout",
                    "60",
                    "start",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server by its pid: fast shutdown, then immediate, then kill."""
        pid = self.pid()
        if pid is None:
            return
        for sig, grace in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if not process_alive(pid):
                    return
                time.sleep(0.05)
            log(f"server pid {pid} still running after {sig.name}")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def pg_ctl(datadir: str | Path, action: str, *options: str) -> None:
    """Run ``pg_ctl ACTION`` on the cluster in ``datadir`` (as the server
    user), waiting for it to finish; e.g. ``pg_ctl(d, "stop", "--mode", "immediate")``."""
    command = [str(PG_BIN / "pg_ctl"), "--pgdata", str(datadir), "--wait", "--timeout", "60", *options]
    if action in ("start", "restart"):
        command += ["--log", str(Path(datadir) / "server.log")]
    subprocess.run(as_server_user([*command, action]), check=True, stdout=subprocess.DEVNULL)


def start_throwaway(settings: Callable[[Cluster], dict[str, str]], bindir: Path = PG_BIN) -> Cluster:
    """Start a fresh cluster with TEST_SETTINGS and ``settings(cluster)`` in
    its own folder under the temporary folder (the caller stops it and
    removes ``cluster.datadir.parent``). Tests use it for a server set up
    apart, e.g. with pg_cron preloaded (``cron_settings``)."""
    root = Path(tempfile.mkdtemp(prefix="pgtq-test-extra-"))
    give_to_server_user(root)
    root.chmod(0o755)
    cluster = Cluster(root / "data", bindir)
    cluster.initialise({**TEST_SETTINGS, **settings(cluster)})
    cluster.start()
    return cluster


def kept_cluster_dir(requested: Path) -> Path:
    """Where a kept cluster for ``requested`` lives: there, or under /tmp
    when the server user cannot reach that folder (a private home)."""
    parent = requested.resolve().parent
    if server_user_can_reach(parent):
        return requested.resolve()
    digest = hashlib.sha1(str(requested.resolve()).encode()).hexdigest()[:10]
    fallback = Path(tempfile.gettempdir()) / f"pgtq-cluster-{digest}"
    log(f"{parent} is not reachable by user {SERVER_USER}; keeping the cluster in {fallback}")
    return fallback


def start_kept(requested: Path) -> Cluster:
    cluster = Cluster(kept_cluster_dir(requested) / "data")
    if not (cluster.datadir / "PG_VERSION").exists():
        cluster.datadir.parent.mkdir(parents=True, exist_ok=True)
        give_to_server_user(cluster.datadir.parent)
        log(f"creating a PostgreSQL cluster in {cluster.datadir}")
        cluster.initialise(KEPT_SETTINGS)
    cluster.start()
    return cluster


def _pg_config(*options: str) -> list[Path]:
    output = subprocess.run(
        [str(SYSTEM_PG_BIN / "pg_config"), *options], check=True, capture_output=True, text=True
    ).stdout
    return [Path(line.strip()) for line in output.splitlines()]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system: copy (the programs are ~15 MB)
        shutil.copy2(source, target)


def private_install(root: Path) -> Path:
    """A private install tree under ``root`` that behaves as the system's,
    but whose extension folder also holds this checkout's pgtq files (built
    by build_extension.py); returns its bin folder.

    PostgreSQL finds its share and library folders relative to where its
    programs are (it is relocatable), so the tree mirrors the system layout:
    the programs are hard links (or copies), the library folder and every
    share entry are symbolic links, and only ``extension/`` is a real folder.
    """
    import build_extension  # scripts/ is on sys.path: this file's own folder

    bindir, sharedir, pkglibdir = _pg_config("--bindir", "--sharedir", "--pkglibdir")
    prefix = Path(os.path.commonpath([bindir, sharedir, pkglibdir]))
    tree = root / "pg"

    def mirror(path: Path) -> Path:
        return tree / path.relative_to(prefix)

    mirror(bindir).mkdir(parents=True)
    for program in bindir.iterdir():
        _link_or_copy(program, mirror(bindir) / program.name)
    if not mirror(pkglibdir).exists():
        mirror(pkglibdir).parent.mkdir(parents=True, exist_ok=True)
        mirror(pkglibdir).symlink_to(pkglibdir)
    extension = mirror(sharedir) / "extension"
    extension.mkdir(parents=True)
    for entry in sharedir.iterdir():
        if entry.name != "extension":
            (mirror(sharedir) / entry.name).symlink_to(entry)
    for entry in (sharedir / "extension").iterdir():
        if not entry.name.startswith("pgtq"):
            (extension / entry.name).symlink_to(entry)
    build_extension.write(extension)
    for folder in [root, *tree.rglob("*")]:
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(0o755)
    return mirror(bindir)


def run_throwaway(command: list[str]) -> int:
    """Run ``command`` against a fresh cluster that is always stopped after."""
    if os.environ.get("PGTQ_TEST_DSN"):
        log("PGTQ_TEST_DSN is set: using that server, starting none")
        return subprocess.run(command, check=False).returncode
    root = Path(tempfile.mkdtemp(prefix="pgtq-test-"))
    give_to_server_user(root)
    cluster = Cluster(root / "data")
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        cluster = Cluster(cluster.datadir, private_install(root))
        cluster.initialise(TEST_SETTINGS)
        cluster.start()
        log(f"throwaway cluster up: pid {cluster.pid()}, {cluster.dsn}")
        env = dict(os.environ)
        env["PGTQ_PG_BIN"] = str(cluster.bindir)  # pg_ctl() of the tests runs the same programs
        env["PGTQ_TEST_DSN"] = cluster.dsn
        env["PGTQ_TEST_PGDATA"] = str(cluster.datadir)
        env["PGHOST"] = str(cluster.datadir)
        env["PGPORT"] = str(cluster.port)
        env["PGUSER"] = SERVER_USER
        return subprocess.run(command, env=env, check=False).returncode
    except KeyboardInterrupt:
        return 130
    finally:
        pid = cluster.pid()
        cluster.stop()
        log(f"throwaway cluster stopped (pid {pid})")
        shutil.rmtree(root, ignore_errors=True)


# -- a streaming standby, for the failover tests ------------------------------------


def start_standby(primary: Cluster, name: str = "pgtq_standby") -> Cluster:
    """Start a streaming standby of ``primary`` in its own folder under the
    temporary folder, copied with ``pg_basebackup`` (the caller stops it
    and removes ``cluster.datadir.parent``). It connects to the primary as
    application ``name``, the name ``synchronous_standby_names`` gives."""
    root = Path(tempfile.mkdtemp(prefix="pgtq-test-standby-"))
    give_to_server_user(root)
    root.chmod(0o755)
    cluster = Cluster(root / "data", primary.bindir)
    copied = subprocess.run(
        as_server_user(
            [
                str(primary.bindir / "pg_basebackup"),
                "--pgdata",
                str(cluster.datadir),
                "--host",
                str(primary.datadir),
                "--port",
                str(primary.port),
                "--username",
                SERVER_USER,
                "--wal-method",
                "stream",
                "--checkpoint",
                "fast",
                "--no-sync",
            ]
        ),
        capture_output=True,  # it warns of every socket it skips: the primary's lives in its folder
        text=True,
        check=False,
    )
    if copied.returncode != 0:
        raise RuntimeError(f"pg_basebackup failed: {copied.stderr.strip()}")
    port = free_port()
    source = f"host={primary.datadir} port={primary.port} user={SERVER_USER} application_name={name}"
    with (cluster.datadir / "postgresql.auto.conf").open("a") as config:  # the copy's settings, then these
        config.write(
            f"port = {port}\n"
            f"unix_socket_directories = '{cluster.datadir}'\n"
            f"primary_conninfo = '{source}'\n"
            "synchronous_standby_names = ''\n"
        )
    cluster.port_file.write_text(f"{port}\n")
    (cluster.datadir / "standby.signal").touch()
    give_to_server_user(cluster.datadir / "standby.signal")
    cluster.start()
    return cluster


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    verb, rest = argv[0], argv[1:]
    if verb == "run":
        if rest[:1] == ["--"]:
            rest = rest[1:]
        if not rest:
            log("run needs a command after --")
            return 2
        return run_throwaway(rest)
    if verb in ("start", "stop", "dsn") and len(rest) == 1:
        requested = Path(rest[0])
        if verb == "start":
            print(start_kept(requested).dsn)
            return 0
        cluster = Cluster(kept_cluster_dir(requested) / "data")
        if verb == "stop":
            cluster.stop()
            return 0
        if cluster.pid() is None:
            log(f"no cluster runs in {cluster.datadir}")
            return 1
        print(cluster.dsn)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
