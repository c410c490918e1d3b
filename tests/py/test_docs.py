"""The documentation runs as written, and the SQL reference cannot drift.

* Every code block of the README and of docs/quickstart.md runs, in order,
  against a fresh database, in a virtualenv outside the repository with
  this checkout's wheel installed (``pip install pgtq`` installs that wheel).
  ``sh`` blocks run in bash; a ``pgtq worker`` line runs in the background
  until the jobs it can take are done, then gets SIGTERM (it must exit 0);
  ``python`` blocks with a title are written to that file, the others run;
  ``sql`` blocks run in psql. ``dbname=app`` stands for the test database.
* docs/reference/sql.md has one section per public function of the
  catalog (pg_proc), with its exact signature and defaults, a guarantee
  comment in sql/pgtq.sql, and an example; the examples run in order.
* The examples of the guides run: job keys (SQL and Python), the Python
  API, periodic tasks (SQL and Python), cancelling a running job, retry
  control, waiting for a result, and waiting from asyncio.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import REPO, outside_env, psql_output, run_psql, scalar, wait_until, worker_running

sys.path.insert(0, str(REPO / "scripts"))
import docs_hooks

import pgtq
from pgtq.worker import Worker, WorkerSettings

DOCS = REPO / "docs"
FENCE = re.compile(r"^```(\w+)([^\n]*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
WORKER_LINE = re.compile(r"^pgtq worker (\S+).*$", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    language: str
    title: str | None
    code: str


def blocks(markdown: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    found = []
    for match in FENCE.finditer(markdown):
        title = re.search(r'title="([^"]+)"', match.group(2))
        found.append(Block(match.group(1), title.group(1) if title else None, match.group(3)))
    return found


def section(path: Path, heading: str) -> str:
    """The text of a page from ``heading`` to the next heading of its level or
    above (a ``#`` line inside a code block is a comment, not a heading)."""
    text = path.read_text()
    start = text.index(heading + "\n")
    level = len(heading) - len(heading.lstrip("#"))
    following = re.compile(rf"^#{{1,{level}}} ")
    offset, fenced = start + len(heading) + 1, False
    for line in text[offset:].splitlines(keepends=True):
        fenced ^= line.startswith("```")
        if not fenced and following.match(line):
            return text[start:offset]
        offset += len(line)
    return text[start:]


# -- walkthroughs: the README and the quickstart ------------------------------------

WAIT_FOR_WORKER = """
{command} & worker=$!
for attempt in $(seq 1200); do
    left=$(psql -XAt -d "$PGTQ_DSN" -c "SELECT count(*) FROM pgtq.jobs WHERE state IN ('ready', 'running')")
    [ "$left" = 0 ] && break
    kill -0 $worker || break
    sleep 0.05
done
kill -TERM $worker
wait $worker
"""


def walk_through(markdown: str, *, dsn: str, bindir: Path, wheel: Path, workdir: Path) -> list[str]:
    """Run every code block of ``markdown`` in order (see the module's
    docstring); returns what each printed."""
    env = outside_env(bindir, PGTQ_DSN=dsn, PYTHONPATH=str(workdir))
    printed = []
    for number, block in enumerate(blocks(markdown)):
        code = block.code.replace("dbname=app", dsn)
        if block.language == "sh":
            code = re.sub(r"^pip install pgtq$", f"pip install --quiet {wheel}", code, flags=re.MULTILINE)
            code = WORKER_LINE.sub(
                lambda m: WAIT_FOR_WORKER.format(command=f"pgtq worker {m.group(1)}"), code
            )
            command = ["bash", "-euo", "pipefail", "-c", code]
        elif block.language == "python" and block.title:
            (workdir / block.title).write_text(code)
            continue
        elif block.language == "python":
            script = workdir / f"block_{number}.py"
            script.write_text(code)
            command = [str(bindir / "python"), str(script)]
        elif block.language == "sql":
            command = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", dsn]
        else:
            pytest.fail(f"block {number} is {block.language!r}: the walkthrough cannot run it")
        result = subprocess.run(
            command,
            input=code if block.language == "sql" else None,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, f"block {number} ({block.language}) failed:\n{code}\n{result.stderr}"
        printed.append(result.stdout)
    return printed


@pytest.mark.slow
def test_every_block_of_the_readme_runs(empty_dsn: str, installed: Path, wheel: Path, tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text()
    with psycopg.connect(empty_dsn, autocommit=True) as db:
        db.execute("CREATE TABLE users (id int PRIMARY KEY, email text NOT NULL)")
        db.execute("CREATE TABLE orders (id int PRIMARY KEY, customer text, total numeric)")
        walk_through(readme, dsn=empty_dsn, bindir=installed, wheel=wheel, workdir=tmp_path)
        jobs = db.execute("SELECT task, args, state::text, result FROM pgtq.jobs ORDER BY id").fetchall()
        assert jobs == [
            ("send_welcome", [42], "done", {"sent_to": 42}),
            ("send_welcome", [43], "scheduled", None),
            ("send_receipt", [1042], "done", {"sent": True}),
            ("charge", [7, 500], "ready", None),  # flow control: one job of the key at a time
            ("charge", [7, 500], "ready", None),
        ]
        assert scalar(db, "SELECT priority FROM pgtq.jobs WHERE args = '[43]'") == 5
        limits = "SELECT array_agg(row(queue, max_running, rate_limit)::text ORDER BY queue) FROM pgtq.queues"
        assert set(scalar(db, limits)) >= {"(billing,5,)", "(mailer,,20)", "(thumbnails,5,)"}
        lock_keys = "SELECT array_agg(DISTINCT lock_key) FROM pgtq._job WHERE task = 'charge'"
        assert scalar(db, lock_keys) == ["account:7"]
        assert scalar(db, "SELECT count(*) FROM users") == 1


@pytest.mark.slow
def test_every_block_of_the_quickstart_runs(
    empty_dsn: str, installed: Path, wheel: Path, tmp_path: Path
) -> None:
    quickstart = (DOCS / "quickstart.md").read_text()
    printed = walk_through(quickstart, dsn=empty_dsn, bindir=installed, wheel=wheel, workdir=tmp_path)
    with psycopg.connect(empty_dsn, autocommit=True) as db:
        jobs = db.execute("SELECT id, args, state::text, result FROM pgtq.jobs ORDER BY id").fetchall()
        assert jobs == [
            (1, ["ann@example.com"], "done", {"sent_to": "ann@example.com"}),
            (2, ["bob@example.com"], "done", {"sent_to": "bob@example.com"}),
        ]
        assert scalar(db, "SELECT array_agg(email) FROM users") == ["bob@example.com"]
    assert printed[1].startswith("job 1"), printed
    assert "sent_to" in printed[-1] and "emails" in printed[-1], "pgtq job shows the result, stats the queue"


def test_the_walkthroughs_run_everything_they_show() -> None:
    """Each block kind the README and the quickstart use is one the runner runs."""
    for page in (REPO / "README.md", DOCS / "quickstart.md"):
        languages = {block.language for block in blocks(page.read_text())}
        assert languages <= {"sh", "python", "sql"}, (page, languages)
        assert len(blocks(page.read_text())) >= 4


# -- the SQL reference ---------------------------------------------------------------


def signature(name: str, arguments: str, kind: str, result: str | None) -> str:
    """A function's signature as the SQL reference writes it: one parameter
    a line, as pg_get_function_arguments gives them."""
    parameters = arguments.split(", ") if arguments else []
    inner = "".join(f"\n    {parameter}," for parameter in parameters).rstrip(",")
    inner = f"{inner}\n" if parameters else ""
    if kind == "p":
        return f"PROCEDURE pgtq.{name}({inner})"
    return f"pgtq.{name}({inner}) RETURNS {result}"


PUBLIC_FUNCTIONS = """
SELECT p.proname, pg_get_function_arguments(p.oid), p.prokind::text, pg_get_function_result(p.oid)
FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname = 'pgtq' AND p.proname !~ '^_'
ORDER BY p.proname
"""

REFERENCE = DOCS / "reference" / "sql.md"


def reference_sections() -> dict[str, str]:
    text = REFERENCE.read_text()
    starts = [(m.group(1), m.start()) for m in re.finditer(r"^### pgtq\.([a-z_]+)$", text, re.MULTILINE)]
    ends = [start for _, start in starts[1:]] + [len(text)]
    names = [name for name, _ in starts]
    assert len(names) == len(set(names)), "a function documented twice"
    return {name: text[start:end] for (name, start), end in zip(starts, ends, strict=True)}


def test_the_sql_reference_documents_every_public_function_as_the_catalog_has_it(
    db: psycopg.Connection[Any],
) -> None:
    catalog = {row[0]: signature(*row) for row in db.execute(PUBLIC_FUNCTIONS)}
    sections = reference_sections()
    assert sorted(sections) == sorted(catalog), "documented functions differ from pg_proc's"
    comments = docs_hooks.guarantees((REPO / "sql" / "pgtq.sql").read_text())
    for name, text in sections.items():
        found = blocks(text)
        assert found and found[0].language == "text", f"pgtq.{name}: no signature block"
        assert found[0].code.strip() == catalog[name], f"pgtq.{name}: the signature differs from the catalog"
        assert f"<!-- guarantees: {name} -->" in text, f"pgtq.{name}: no guarantees"
        assert comments.get(name), f"pgtq.{name}: no '-- Guarantees:' comment in sql/pgtq.sql"
        assert any(block.language == "sql" for block in found[1:]), f"pgtq.{name}: no example"


def test_the_sql_reference_examples_run_in_order(dsn: str) -> None:
    examples = [block.code for block in blocks(REFERENCE.read_text()) if block.language == "sql"]
    output = psql_output(dsn, "\n".join(examples))
    assert "send_welcome" in output


def test_guarantees_render_as_markdown() -> None:
    comment = ["claims jobs.", "  * one;", "  * two.", "Then more."]
    rendered = docs_hooks.as_markdown(comment)
    assert rendered.startswith('!!! success "Guarantees"')
    assert (
        "    claims jobs.\n\n    ```text\n      * one;\n      * two.\n    ```\n\n    Then more." in rendered
    )


# -- examples the guides took over from the old README -------------------------------


def test_job_keys_example_in_psql(dsn: str, db: psycopg.Connection[Any]) -> None:
    example = blocks(section(DOCS / "guides" / "jobs.md", "## Job keys (unique jobs)"))[0]
    output = psql_output(dsn, example.code)
    jobs = db.execute("SELECT id, args, state::text FROM pgtq.jobs WHERE job_key = 'user:42'").fetchall()
    assert [(args, state) for _, args, state in jobs] == [([42, "full"], "scheduled")], "one job, replaced"
    lines = [line.strip() for line in output.splitlines()]
    assert lines.count(str(jobs[0][0])) == 3, "each of the three pushes returned the job's id"


def test_python_api_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    example = blocks((DOCS / "guides" / "python.md").read_text())[0].code
    runnable = example[: example.index("@q.handler(name=")].replace("dbname=q user=postgres", dsn)
    namespace: dict[str, Any] = {}
    exec(compile(runnable, "docs/guides/python.md", "exec"), namespace)
    assert namespace["add_numbers"](2, 3) == 5
    assert db.execute("SELECT task, args FROM pgtq.jobs WHERE id = %s", [namespace["job_id"]]).fetchone() == (
        "add_numbers",
        [2, 3],
    )
    namespace["q"].close()


def test_periodic_tasks_example_in_psql(dsn: str, db: psycopg.Connection[Any]) -> None:
    example = blocks((DOCS / "guides" / "periodic.md").read_text())[0]
    result = run_psql(dsn, example.code)
    assert result.returncode == 0, result.stderr
    assert "morning-report" in result.stdout, "schedule and the view show it"
    assert "30 7 * * MON-FRI | Europe/Paris" in result.stdout
    assert scalar(db, "SELECT count(*) FROM pgtq.schedules") == 0, "and unschedule removed it"


# -- the Python examples of the guides' features ---------------------------------------


def guide_python(page: str, heading: str) -> str:
    """The first Python block of a section of a page under docs/."""
    return next(b.code for b in blocks(section(DOCS / page, heading)) if b.language == "python")


def run_python(example: str, dsn: str) -> dict[str, Any]:
    """Run a guide's example against this test's database; its names (its
    queue ``q`` closed)."""
    namespace: dict[str, Any] = {}
    exec(compile(example.replace('"dbname=app"', repr(dsn)), "docs", "exec"), namespace)
    namespace["q"].close()
    return namespace


def test_job_keys_python_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    names = run_python(guide_python("guides/jobs.md", "## Job keys (unique jobs)"), dsn)
    assert names["first"] == names["again"] == names["later"]
    assert names["ids"][0] == names["ids"][2] != names["ids"][1]
    jobs = db.execute("SELECT job_key, args, kwargs, state::text FROM pgtq.jobs ORDER BY id").fetchall()
    assert jobs == [
        ("sync_user:42", [42], {"full": True}, "scheduled"),  # replaced: the newest push, 30 s ahead
        ("sync_user:1", [1], {}, "ready"),
        ("sync_user:2", [2], {}, "ready"),
    ]


def test_waiting_python_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    """The example waits for jobs a worker runs: one runs here, in a thread,
    with the example's handler."""
    served = pgtq.PgTq("emails", dsn)

    @served.handler()
    def send_receipt(order_id: int) -> dict[str, int]:
        return {"sent": order_id}

    worker = Worker(served, WorkerSettings(concurrency=4, batch_size=20, poll_interval=0.5))
    running = threading.Thread(target=worker.run)
    running.start()
    try:
        names = run_python(guide_python("guides/jobs.md", "## Waiting for a result"), dsn)
    finally:
        worker.stop()
        running.join(timeout=60)
    assert names["receipt"] == {"sent": 1042}
    assert [outcome.result for outcome in names["outcomes"]] == [{"sent": n} for n in range(100)]
    assert names["failed"] == []
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state = 'done'") == 101


def test_waiting_from_asyncio_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    """The asyncio example waits for jobs a worker runs here, in a thread,
    with the example's handler."""
    served = pgtq.PgTq("thumbnails", dsn)

    @served.handler()
    def thumbnail(url: str) -> str:
        return url.replace(".png", "-128.png")

    with worker_running(served, concurrency=4):
        names = run_python(guide_python("guides/enqueue.md", "### Waiting for results from asyncio"), dsn)
    assert names["small"] == [f"https://img.example.com/{n}-128.png" for n in range(50)]
    assert names["each"] == ["https://img.example.com/a-128.png", "https://img.example.com/b-128.png"]
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state = 'done'") == 52


def test_periodic_tasks_python_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    run_python(guide_python("guides/periodic.md", "# Periodic tasks"), dsn)
    assert db.execute("SELECT name, cron, timezone, queue, task, kwargs FROM pgtq.schedules").fetchall() == [
        (
            "reports:send_report",
            "30 7 * * MON-FRI",
            "Europe/Paris",
            "reports",
            "send_report",
            {"to": "ops@example.com"},
        )
    ]


def run_example(page: str, heading: str, dsn: str) -> dict[str, Any]:
    """Run the first Python block of a guide's section against this test's
    database; its names, the queue ``q`` left open for the test to use."""
    namespace: dict[str, Any] = {}
    example = guide_python(page, heading).replace('"dbname=app"', repr(dsn))
    exec(compile(example, f"docs/{page}", "exec"), namespace)
    return namespace


def job_state(db: psycopg.Connection[Any], job_id: int) -> str:
    return str(scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", [job_id]))


def test_cancelling_a_running_job_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    example = run_example("guides/jobs.md", "## Cancelling a running job", dsn)
    q, build_report, fetch_feed = example["q"], example["build_report"], example["fetch_feed"]
    assert job_state(db, example["job_id"]) == "cancelled", "cancelled before it started"

    report, feed = build_report.push(43, pages=10_000), fetch_feed.push("https://example.com/feed")
    with worker_running(q):
        wait_until(lambda: job_state(db, report) == job_state(db, feed) == "running")
        assert q.cancel(report) and q.cancel(feed)
        wait_until(lambda: job_state(db, report) == job_state(db, feed) == "cancelled")
    assert str(scalar(db, "SELECT result FROM pgtq.jobs WHERE id = %s", [report])).startswith(
        "stopped at page"
    )
    error = str(scalar(db, "SELECT last_error FROM pgtq.jobs WHERE id = %s", [feed]))
    assert error.startswith(
        f"Cancelled: job {feed} was asked to cancel while it ran; its coroutine was cancelled"
    )
    q.close()


def test_retry_control_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    example = run_example("guides/jobs.md", "## Retry control", dsn)
    q, send = example["q"], example["send"]
    policies = db.execute("SELECT args, backoff_base, backoff_cap FROM pgtq.jobs ORDER BY id").fetchall()
    assert policies == [
        (["ann", "hi"], timedelta(seconds=30), timedelta(minutes=10)),
        (["bob", "hi"], timedelta(seconds=5), timedelta(seconds=60)),
    ]
    ids = {account: send.push(account, "hi") for account in ("closed", "busy", "flaky", "nobody")}
    with worker_running(q):
        wait_until(lambda: all(job_state(db, i) in ("scheduled", "failed") for i in ids.values()))
    ended = {
        account: (job_state(db, i), scalar(db, "SELECT attempt FROM pgtq.jobs WHERE id = %s", [i]))
        for account, i in ids.items()
    }
    assert ended == {
        "closed": ("failed", 1),
        "busy": ("scheduled", 1),
        "flaky": ("scheduled", 1),
        "nobody": ("failed", 1),
    }
    waits = scalar(db, "SELECT run_at - started_at FROM pgtq.jobs WHERE id = %s", [ids["busy"]])
    assert timedelta(minutes=2) <= waits < timedelta(minutes=3), "Retry(delay=120)"
    waits = scalar(db, "SELECT run_at - started_at FROM pgtq.jobs WHERE id = %s", [ids["flaky"]])
    assert timedelta(seconds=24) <= waits < timedelta(minutes=1), "the handler's backoff: 30 s, jittered"
    q.close()


# -- flow control (docs/guides/flow.md) ---------------------------------------------------

FLOW = "guides/flow.md"


def flow_sql(heading: str) -> str:
    return next(b.code for b in blocks(section(DOCS / FLOW, heading)) if b.language == "sql")


def test_pause_and_resume_example_in_psql(dsn: str, db: psycopg.Connection[Any]) -> None:
    output = psql_output(dsn, flow_sql("## Pause and resume"))
    handed_out = re.findall(r"handed_out\s*\n-+\n\s*(\d+)", output)
    assert handed_out == ["0", "2"], output
    assert " reports | t      |     2" in output
    assert scalar(db, "SELECT paused FROM pgtq.queues WHERE queue = 'reports'") is False


def test_limits_example_in_psql(dsn: str, db: psycopg.Connection[Any]) -> None:
    output = psql_output(dsn, flow_sql("## Global concurrency limit and rate limit"))
    assert (
        "thumbnails |           5 |" in output
        and "mailer     |             |         20 | 00:00:01" in output
    )
    limits = db.execute("SELECT queue, max_running, rate_limit FROM pgtq.queues ORDER BY queue").fetchall()
    assert limits == [("crawler", 2, 100), ("mailer", None, 20)], "the last call removed thumbnails' limit"


def test_limits_python_example(dsn: str) -> None:
    names = run_python(guide_python(FLOW, "## Global concurrency limit and rate limit"), dsn)
    info = names["info"]
    assert (info.queue, info.rate_limit, info.rate_period, info.paused) == (
        "mailer",
        20,
        timedelta(seconds=1),
        False,
    )
    assert names["paused"] is True
    assert names["limits"] == {"mailer": None, "thumbnails": 5}


def test_lock_keys_example_in_psql(dsn: str) -> None:
    output = psql_output(dsn, flow_sql("## Lock keys: one job at a time per key"))
    assert [line.strip() for line in output.splitlines() if line.strip().startswith("[")] == [
        "[1, 10]",
        "[2, 30]",
        "[]",
    ]


def test_transactional_handler_example(dsn: str, db: psycopg.Connection[Any]) -> None:
    db.execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int NOT NULL);"
        "CREATE TABLE ledger (account_id int NOT NULL, cents int NOT NULL);"
        "INSERT INTO accounts VALUES (1, 100), (2, 5)"
    )
    example = run_example(FLOW, "## Transactional handlers: exactly-once database effects", dsn)
    q, charge = example["q"], example["charge"]
    db.execute("ALTER TABLE accounts ADD CONSTRAINT not_overdrawn CHECK (balance >= 0)")
    paid, overdrawn = charge.push(1, 30), charge.options(max_attempts=1).push(2, 30)
    with worker_running(q):
        wait_until(lambda: job_state(db, paid) == "done" and job_state(db, overdrawn) == "failed")
    assert db.execute("SELECT id, balance FROM accounts ORDER BY id").fetchall() == [(1, 70), (2, 5)]
    assert db.execute("SELECT account_id, cents FROM ledger").fetchall() == [(1, -30)], "nothing of job 2"
    assert scalar(db, "SELECT result FROM pgtq.jobs WHERE id = %s", [paid]) == {"charged": 30}
    q.close()
