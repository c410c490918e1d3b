"""pgtq as users install it: a wheel built from this checkout
(``python -m build``) and pip-installed into a fresh virtualenv outside the
repository; there ``pgtq migrate`` installs the schema from the SQL the
wheel carries (importlib.resources), a worker runs a job, and an
application's own alembic history installs and upgrades pgtq beside its
schema (``alembic upgrade heads``). Also: the extension installs with PGXS.

Slow (a build and an install from the package index, 15 to 60 s): the
wheel and its virtualenv are made once per session (conftest: ``wheel``,
``installed``), shared with the documentation's walkthroughs."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import zipfile
from email.parser import Parser
from pathlib import Path

import psycopg
import pytest
from conftest import REPO, outside_env, pgcluster, run, scalar, wait_until
from psycopg.conninfo import conninfo_to_dict

sys.path.insert(0, str(REPO / "scripts"))
import build_extension

pytestmark = pytest.mark.slow


def test_the_wheel_carries_sql_control_file_migrations_and_metadata(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    expected = {
        "pgtq/py.typed",
        "pgtq/_data/pgtq.control",
        "pgtq/_data/sql/pgtq.sql",
        "pgtq/_data/migrations/env.py",
        *(f"pgtq/_data/sql/{name}" for name in build_extension.extension_files() if name.count("--") == 2),
        *(
            f"pgtq/_data/migrations/versions/{p.name}"
            for p in (REPO / "migrations" / "versions").glob("*.py")
        ),
    }
    assert expected <= names, sorted(expected - names)
    assert not any(name.startswith(("tests/", "bench/")) for name in names)
    assert metadata["License-Expression"] == "MIT"
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    urls = dict(entry.split(", ", 1) for entry in metadata.get_all("Project-URL"))
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    assert metadata["Version"] == build_extension.current_version()


def test_pip_installed_pgtq_migrates_a_fresh_database_and_runs_a_job(
    installed: Path, empty_dsn: str, tmp_path: Path
) -> None:
    python = str(installed / "python")
    probe = "import pgtq, pgtq._db.schema as s; print(pgtq.__file__); print(s.sql_dir())"
    located = run([python, "-c", probe], cwd=tmp_path, env=outside_env(installed)).split()
    assert all(not path.startswith(str(REPO)) for path in located), located
    assert located[1].endswith("pgtq/_data/sql")
    output = run(["pgtq", "migrate", "--dsn", empty_dsn], cwd=tmp_path, env=outside_env(installed))
    assert build_extension.current_version() in output
    (tmp_path / "tasks.py").write_text(
        textwrap.dedent(
            """
            import os
            import pgtq

            q = pgtq.PgTq("wheel", os.environ["PGTQ_DSN"])

            @q.handler()
            def add(a, b):
                return a + b
            """
        )
    )
    env = outside_env(installed, PGTQ_DSN=empty_dsn, PYTHONPATH=str(tmp_path))
    push = "import tasks; print(tasks.add.push(2, 3))"
    job_id = int(run([python, "-c", push], cwd=tmp_path, env=env))
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen(
            ["pgtq", "worker", "tasks:q", "--poll-interval", "0.2"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with psycopg.connect(empty_dsn, autocommit=True) as db:
            wait_until(
                lambda: scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", [job_id]) == "done"
            )
            assert scalar(db, "SELECT result FROM pgtq.jobs WHERE id = %s", [job_id]) == 5
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, (tmp_path / "worker.log").read_text()


APP_ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/migrations
# the application's revisions, then pgtq's (its branch "pgtq")
version_locations = %(here)s/migrations/versions pgtq:_data/migrations/versions
path_separator = space
"""

APP_ENV = '''\
"""The application's alembic environment: a plain one (postgresql+psycopg)."""
import os

from alembic import context
from sqlalchemy import create_engine, pool

engine = create_engine(os.environ["APP_DATABASE_URL"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
'''

APP_REVISION = '''\
"""users, and a trigger that pushes a welcome job: needs pgtq's schema.

Revision ID: app_0001
"""
from alembic import op

revision = "app_0001"
down_revision = None
branch_labels = ("app",)
depends_on = "pgtq_0_1_0"


def upgrade() -> None:
    op.execute("CREATE TABLE users (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL)")
    op.execute("""
        CREATE FUNCTION welcome() RETURNS trigger LANGUAGE plpgsql
        SET search_path = pg_catalog, pg_temp AS $$
        BEGIN
            PERFORM pgtq.push('emails', 'send_welcome', jsonb_build_array(NEW.id));
            RETURN NULL;
        END $$""")
    op.execute("CREATE TRIGGER users_welcome AFTER INSERT ON users FOR EACH ROW EXECUTE FUNCTION welcome()")


def downgrade() -> None:
    op.execute("DROP TABLE users")
    op.execute("DROP FUNCTION welcome()")
'''


def test_an_application_alembic_history_installs_and_upgrades_pgtq(
    installed: Path, empty_dsn: str, tmp_path: Path
) -> None:
    app = tmp_path / "app"
    (app / "migrations" / "versions").mkdir(parents=True)
    (app / "alembic.ini").write_text(APP_ALEMBIC_INI)
    (app / "migrations" / "env.py").write_text(APP_ENV)
    (app / "migrations" / "versions" / "app_0001.py").write_text(APP_REVISION)
    params = conninfo_to_dict(empty_dsn)
    url = f"postgresql+psycopg://{params['user']}@/{params['dbname']}?host={params['host']}&port={params['port']}"
    env = outside_env(installed, APP_DATABASE_URL=url)
    alembic = str(installed / "alembic")

    run([alembic, "upgrade", "app@head"], cwd=app, env=env)
    with psycopg.connect(empty_dsn, autocommit=True) as db:
        assert scalar(db, "SELECT pgtq.version()") == "0.1.0", "the app's revision needed pgtq's first only"
        heads = {row[0] for row in db.execute("SELECT version_num FROM alembic_version")}
        assert heads == {"app_0001"}, "pgtq_0_1_0 is implied by the dependency"

        run([alembic, "upgrade", "heads"], cwd=app, env=env)
        newest = build_extension.current_version()
        assert scalar(db, "SELECT pgtq.version()") == newest
        heads = {row[0] for row in db.execute("SELECT version_num FROM alembic_version")}
        assert heads == {"app_0001", "pgtq_" + newest.replace(".", "_")}
        listed = run([alembic, "heads"], cwd=app, env=env)
        assert "app_0001" in listed and "pgtq_" + newest.replace(".", "_") in listed

        db.execute("INSERT INTO users (email) VALUES ('ann@example.com')")
        assert db.execute("SELECT task, args FROM pgtq.jobs").fetchall() == [("send_welcome", [1])]
        run([alembic, "upgrade", "heads"], cwd=app, env=env)  # nothing to do
        assert scalar(db, "SELECT count(*) FROM pgtq.jobs") == 1


def test_the_extension_installs_with_pgxs(tmp_path: Path) -> None:
    pg_config = str(pgcluster.SYSTEM_PG_BIN / "pg_config")
    stage = tmp_path / "stage"
    try:
        run(["make", "-C", "extension", "install", f"DESTDIR={stage}", f"PG_CONFIG={pg_config}"], cwd=REPO)
        sharedir = run([pg_config, "--sharedir"], cwd=REPO).strip()
        installed = stage / sharedir.lstrip("/") / "extension"
        files = build_extension.extension_files()
        assert sorted(p.name for p in installed.iterdir()) == sorted(files)
        assert all((installed / name).read_text() == text for name, text in files.items())
    finally:
        run(["make", "-C", "extension", "clean"], cwd=REPO)
    assert not (REPO / "extension" / "build").exists()
