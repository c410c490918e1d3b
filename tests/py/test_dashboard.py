"""The dashboard over HTTP against a real database (Starlette's test
client, the app as ``pgtq.dashboard.create_app`` builds it), reading as a
login role granted pgtq_observer and acting as one granted pgtq_admin:
pages, keyset paging against the SQL order, escaping, actions with their
CSRF token and confirmation, read-only mode, roles, the token, /metrics."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from conftest import TEMPLATE, recreate, run_module, scalar
from dashboard_data import HOSTILE_ARG, HOSTILE_TASK, QUEUES, WORKERS, Populated, populate
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql
from psycopg.conninfo import make_conninfo
from starlette.testclient import TestClient

import pgtq
from pgtq._db import gateway
from pgtq.dashboard import DashboardConfig, create_app

TOKEN = "test-token-0123456789abcdef"
_copies = itertools.count()


@pytest.fixture(scope="module")
def populated(server_dsn: str, template_dsn: str) -> Iterator[tuple[str, Populated]]:
    """A database with an hour of queue life, made once for this module."""
    name = f"pgtq_test_dashboard_{os.getpid()}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        recreate(admin, name, template=TEMPLATE)
    yield name, populate(make_conninfo(server_dsn, dbname=name))
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def dsn(server_dsn: str, populated: tuple[str, Populated]) -> Iterator[str]:
    """A copy of the populated database for one test (replaces conftest's empty one)."""
    name = f"pgtq_test_dashboard_{os.getpid()}_{next(_copies)}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        recreate(admin, name, template=populated[0])
    yield make_conninfo(server_dsn, dbname=name)
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def data(dsn: str, populated: tuple[str, Populated]) -> Populated:
    return populated[1]


@pytest.fixture
def role_dsns(dsn: str, login_role: Callable[[str], str]) -> tuple[str, str]:
    """DSNs of a login role granted pgtq_observer and of one granted pgtq_admin."""
    return make_conninfo(dsn, user=login_role("pgtq_observer")), make_conninfo(
        dsn, user=login_role("pgtq_admin")
    )


@pytest.fixture
def open_dashboard(role_dsns: tuple[str, str]) -> Iterator[Callable[..., TestClient]]:
    """Start dashboards (reading as the observer, acting as the admin unless
    told otherwise) and close them after the test."""
    clients: list[TestClient] = []

    def start(**options: Any) -> TestClient:
        reader, admin = role_dsns
        options.setdefault("admin_dsn", admin)
        client = TestClient(create_app(DashboardConfig(dsn=reader, **options)), base_url="http://127.0.0.1")
        clients.append(client.__enter__())
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


def state_of(db: psycopg.Connection[Any], job_id: int) -> str:
    return str(scalar(db, "SELECT state::text FROM pgtq.jobs WHERE id = %s", [job_id]))


# -- pages ------------------------------------------------------------------------


def test_the_overview_shows_every_queue_with_the_sql_figures(
    data: Populated, db: psycopg.Connection[Any], open_dashboard: Callable[..., TestClient]
) -> None:
    page = open_dashboard().get("/")
    assert page.status_code == 200
    rows = dict(re.findall(r'<tr data-queue="([^"]+)">(.*?)</tr>', page.text, re.S))
    assert sorted(rows) == sorted(QUEUES)
    for queue in QUEUES:
        ready = scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = %s AND state = 'ready'", [queue])
        cells = re.findall(r'<td class="num[^"]*">(?:<a[^>]*>)?([^<]*)', rows[queue])
        assert int(cells[1]) == ready
        assert int(cells[3]) == data.failed_by_queue.get(queue, 0)
    assert page.text.count('class="line series-') == len(QUEUES)  # an hour of history: a line per queue
    assert 'class="bar bar-completed"' in page.text


def test_the_overview_shows_what_pgtq_health_warns_of(
    db: psycopg.Connection[Any], open_dashboard: Callable[..., TestClient]
) -> None:
    page = open_dashboard().get("/")
    assert "forgotten" not in page.text
    db.execute("SELECT pgtq.push('forgotten', 'send', as_of => now() - interval '10 minutes')")
    page = open_dashboard().get("/")
    warned = dict(re.findall(r'data-check="([^"]+)"[^>]*><strong>[^<]*</strong>: ([^<]*)</p>', page.text))
    assert (
        "queue &#39;forgotten&#39;: its next ready job has waited 10 min and no live worker serves it"
        in warned["queues"]
    )
    metrics = open_dashboard().get("/metrics").text
    assert 'pgtq_health_warning{check="queues"} 1.0' in metrics
    assert 'pgtq_health_warning{check="schedules"} 0.0' in metrics


def test_the_overview_shows_even_when_the_health_check_fails(
    db: psycopg.Connection[Any], open_dashboard: Callable[..., TestClient]
) -> None:
    client = open_dashboard()
    db.execute("REVOKE EXECUTE ON FUNCTION pgtq.health FROM pgtq_observer")  # after the start's look
    page = client.get("/")
    assert page.status_code == 200 and 'data-queue="' in page.text
    failed = r'data-check="health"[^>]*><strong>health</strong>: pgtq.health\(\) failed: [^<]*health'
    assert re.search(failed, page.text), "one warning says the check failed"


@pytest.mark.parametrize(
    "filters",
    [
        {"state": "done"},
        {"state": "done", "queue": "emails"},
        {"state": "ready"},
        {"state": "scheduled"},
        {"state": "failed", "queue": "webhooks", "task": "deliver"},
        {},
        {"queue": "reports"},
    ],
)
def test_paging_walks_each_list_in_its_sql_order_without_gaps_or_repeats(
    data: Populated,
    db: psycopg.Connection[Any],
    open_dashboard: Callable[..., TestClient],
    filters: dict[str, str],
) -> None:
    orders = {
        "done": "finished_at DESC, id DESC",
        "failed": "finished_at DESC, id DESC",
        "ready": "queue, priority DESC, id",
        "scheduled": "run_at, id",
        None: "id DESC",
    }
    expected = [
        row[0]
        for row in db.execute(
            "SELECT id FROM pgtq.jobs WHERE (%(state)s::pgtq.job_state IS NULL OR state = %(state)s)"
            " AND (%(queue)s::text IS NULL OR queue = %(queue)s)"
            " AND (%(task)s::text IS NULL OR task = %(task)s)"
            f" ORDER BY {orders[filters.get('state')]}",
            {"state": None, "queue": None, "task": None, **filters},
        )
    ]
    size = max(3, len(expected) // 15)  # a dozen pages or so, each boundary a key of the order
    assert len(expected) > 2 * size
    client = open_dashboard(page_size=size)
    url: str | None = "/jobs?" + "&".join(f"{k}={v}" for k, v in filters.items())
    seen: list[int] = []
    pages = 0
    while url is not None and pages < 2000:
        page = client.get(url)
        assert page.status_code == 200
        ids = [int(i) for i in re.findall(r'<tr data-job="(\d+)">', page.text)]
        assert 0 < len(ids) <= size
        seen += ids
        pages += 1
        found = re.search(r'href="([^"]+)" id="next-page"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else None
    assert seen == expected


def test_a_cursor_of_another_list_is_refused(
    data: Populated, open_dashboard: Callable[..., TestClient]
) -> None:
    client = open_dashboard(page_size=5)
    page = client.get("/jobs?state=done")
    next_url = re.search(r'href="([^"]+)" id="next-page"', page.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    after = parse_qs(urlsplit(next_url).query)["after"][0]
    refused = client.get("/jobs", params={"state": "scheduled", "after": after})
    assert refused.status_code == 400
    assert "another state filter" in refused.text


def test_the_job_page_shows_the_traceback_and_escapes_what_jobs_hold(
    data: Populated, open_dashboard: Callable[..., TestClient]
) -> None:
    client = open_dashboard()
    failed = client.get(f"/jobs/{data.failed_job}")
    assert "Traceback (most recent call last):" in failed.text
    assert 'File "/srv/app/tasks.py", line 57, in deliver' in failed.text.replace("&#34;", '"')
    for url in (
        f"/jobs/{data.hostile_job}",
        "/jobs?queue=webhooks&state=failed",
        "/jobs?task=" + HOSTILE_TASK,
    ):
        page = client.get(url)
        assert page.status_code == 200
        assert "<script>" not in page.text
        assert "&lt;script&gt;alert(" in page.text
    assert client.get(f"/jobs/{data.hostile_job}").text.count("&lt;script&gt;alert(&#39;args&#39;)") >= 2
    assert HOSTILE_ARG not in client.get("/").text


def test_the_job_page_shows_job_keys_and_cancel_requests(
    data: Populated, db: psycopg.Connection[Any], open_dashboard: Callable[..., TestClient]
) -> None:
    """The columns of pgtq.jobs that 0.2.0 added (read from the catalog at
    start, not guessed): a job's key, and a running job's cancel request,
    which the page can make."""
    keyed = scalar(db, "SELECT pgtq.push('mail', 'digest', job_key => 'user:42')")
    client = open_dashboard()
    assert re.search(r"<th>job key</th><td>user:42</td>", client.get(f"/jobs/{keyed}").text)
    running = scalar(db, "SELECT id FROM pgtq.jobs WHERE state = 'running' LIMIT 1")
    page = client.get(f"/jobs/{running}").text
    assert 'id="cancel"' in page, "a running job can be asked to stop"
    assert re.search(r"<th>cancel requested at</th><td><span class=\"muted\">none</span>", page)
    assert scalar(db, "SELECT pgtq.cancel(%s)", [running]) is True
    page = client.get(f"/jobs/{running}").text
    assert not re.search(r"<th>cancel requested at</th><td><span class=\"muted\">none</span>", page)


def test_schedules_and_workers(data: Populated, open_dashboard: Callable[..., TestClient]) -> None:
    client = open_dashboard()
    schedules = client.get("/schedules").text
    assert "nightly-report" in schedules and "Europe/Paris" in schedules and "30 2 * * *" in schedules
    workers = client.get("/workers").text
    assert all(name in workers for name in ("worker-a", "worker-b", "worker-c", "app-1.internal"))


def test_unknown_jobs_and_bad_filters_get_clear_answers(
    data: Populated, open_dashboard: Callable[..., TestClient]
) -> None:
    client = open_dashboard()
    assert client.get("/jobs/999999999").status_code == 404
    assert client.get(f"/jobs/{2**64}").status_code == 404
    bad_state = client.get("/jobs?state=lost")
    assert bad_state.status_code == 400 and "unknown job state" in bad_state.text
    assert client.get("/jobs", params={"queue": "a\x00b"}).status_code == 400
    assert client.get("/jobs?state=done&after=garbage").status_code == 400


# -- actions ---------------------------------------------------------------------------


def test_retry_cancel_and_delete_with_the_session_token(
    data: Populated, db: psycopg.Connection[Any], open_dashboard: Callable[..., TestClient]
) -> None:
    client = open_dashboard()
    token = csrf_of(client.get(f"/jobs/{data.failed_job}").text)

    retried = client.post(f"/jobs/{data.failed_job}/retry", data={"csrf": token})
    assert retried.status_code == 200  # followed the 303 back to the job
    assert f"Job {data.failed_job} retried: it is ready again." in retried.text
    assert state_of(db, data.failed_job) == "ready"
    again = client.post(f"/jobs/{data.failed_job}/retry", data={"csrf": token})
    assert "was not retried: only failed or cancelled jobs can be" in again.text

    cancelled = client.post(f"/jobs/{data.failed_job}/cancel", data={"csrf": token})
    assert f"Job {data.failed_job} cancelled." in cancelled.text
    assert state_of(db, data.failed_job) == "cancelled"

    confirm = client.get(f"/jobs/{data.failed_job}/delete")
    assert f"Delete job {data.failed_job}" in confirm.text and 'name="confirm" value="yes"' in confirm.text
    unconfirmed = client.post(f"/jobs/{data.failed_job}/delete", data={"csrf": token}, follow_redirects=False)
    assert unconfirmed.status_code == 303 and unconfirmed.headers["location"].endswith("/delete")
    assert state_of(db, data.failed_job) == "cancelled"
    deleted = client.post(f"/jobs/{data.failed_job}/delete", data={"csrf": token, "confirm": "yes"})
    assert f"Job {data.failed_job} deleted." in deleted.text
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE id = %s", [data.failed_job]) == 0


def test_bulk_retry_asks_first_then_retries_the_queues_failed_jobs(
    data: Populated, db: psycopg.Connection[Any], open_dashboard: Callable[..., TestClient]
) -> None:
    client = open_dashboard()
    kept = data.failed_by_queue["webhooks"]
    assert kept > 1
    overview = client.get("/")
    assert 'href="/retry-failed?queue=webhooks"' in overview.text
    confirm = client.get("/retry-failed?queue=webhooks")
    assert f"Retry all {kept} failed jobs of queue webhooks?" in confirm.text
    token = csrf_of(confirm.text)
    unconfirmed = client.post(
        "/retry-failed", data={"csrf": token, "queue": "webhooks"}, follow_redirects=False
    )
    assert (
        unconfirmed.status_code == 303 and "/retry-failed?queue=webhooks" in unconfirmed.headers["location"]
    )
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = 'webhooks' AND state = 'failed'") == kept
    done = client.post(
        "/retry-failed", data={"csrf": token, "queue": "webhooks", "task": "", "confirm": "yes"}
    )
    assert f"Retried {kept} failed jobs of queue webhooks: they are ready again." in done.text
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE queue = 'webhooks' AND state = 'failed'") == 0
    assert (
        scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state = 'failed'")
        == sum(data.failed_by_queue.values()) - kept
    )


def paused(db: psycopg.Connection[Any], queue: str) -> bool | None:
    return scalar(db, "SELECT paused FROM pgtq.queues WHERE queue = %s", [queue])  # type: ignore[no-any-return]


def test_pause_and_resume_a_queue_with_the_session_token(
    data: Populated, db: psycopg.Connection[Any], open_dashboard: Callable[..., TestClient]
) -> None:
    db.execute(
        "SELECT pgtq.configure_queue('emails', max_running => 3, rate_limit => 20, rate_period => '1 minute')"
    )
    client = open_dashboard()
    overview = client.get("/")
    row = dict(re.findall(r'<tr data-queue="([^"]+)">(.*?)</tr>', overview.text, re.S))["emails"]
    assert "max 3 running · 20 per 1 min" in row and "state-paused" not in row
    token = csrf_of(overview.text)

    done = client.post("/pause", data={"csrf": token, "queue": "emails"})
    assert done.status_code == 200  # followed the 303 back to the overview
    assert "Queue emails paused: workers take none of its jobs until it is resumed." in done.text
    assert paused(db, "emails") is True
    row = dict(re.findall(r'<tr data-queue="([^"]+)">(.*?)</tr>', done.text, re.S))["emails"]
    assert '<span class="state state-paused"' in row and 'action="/resume"' in row
    assert scalar(db, "SELECT count(*) FROM pgtq.pop('emails')") == 0, "a paused queue hands out nothing"
    again = client.post("/pause", data={"csrf": token, "queue": "emails"})
    assert "Queue emails was paused already." in again.text

    resumed = client.post("/resume", data={"csrf": token, "queue": "emails"})
    assert "Queue emails resumed: workers take its jobs again." in resumed.text
    assert paused(db, "emails") is False
    assert scalar(db, "SELECT max_running FROM pgtq.queues WHERE queue = 'emails'") == 3, "limits stay"
    assert (
        "Queue emails was not paused." in client.post("/resume", data={"csrf": token, "queue": "emails"}).text
    )

    # A queue nobody pushed to yet can be paused too; a forged or missing token or queue changes nothing.
    client.post("/pause", data={"csrf": token, "queue": "new-queue"})
    assert paused(db, "new-queue") is True
    assert client.post("/pause", data={"csrf": "forged", "queue": "reports"}).status_code == 403
    assert client.post("/pause", data={"csrf": token}).status_code == 400
    assert client.post("/pause", data={"csrf": token, "queue": "x" * 201}).status_code == 400
    assert paused(db, "reports") is False


def test_a_post_without_the_sessions_csrf_token_is_refused(
    data: Populated, db: psycopg.Connection[Any], open_dashboard: Callable[..., TestClient]
) -> None:
    client = open_dashboard()
    token = csrf_of(client.get(f"/jobs/{data.failed_job}").text)
    for form in ({}, {"csrf": ""}, {"csrf": token + "x"}):
        refused = client.post(f"/jobs/{data.failed_job}/retry", data=form)
        assert refused.status_code == 403
        assert "CSRF token missing or wrong" in refused.text
    other_session = open_dashboard()  # a session of its own: the token of another is no good
    assert other_session.post(f"/jobs/{data.failed_job}/retry", data={"csrf": token}).status_code == 403
    confirmed = {"csrf": "forged", "queue": "webhooks", "confirm": "yes"}
    assert client.post("/retry-failed", data=confirmed).status_code == 403
    assert state_of(db, data.failed_job) == "failed"
    assert scalar(db, "SELECT count(*) FROM pgtq.jobs WHERE state = 'failed'") == sum(
        data.failed_by_queue.values()
    )


def test_the_session_cookie_is_strict_and_http_only(
    data: Populated, open_dashboard: Callable[..., TestClient]
) -> None:
    cookie = open_dashboard().get("/").headers["set-cookie"].lower()
    assert "samesite=strict" in cookie and "httponly" in cookie and "pgtq_dashboard=" in cookie
    assert "secure" in open_dashboard(secure_cookies=True).get("/").headers["set-cookie"].lower()


@pytest.mark.parametrize("options", [{"read_only": True}, {"admin_dsn": None}])
def test_without_actions_no_page_has_a_form_and_the_action_routes_are_gone(
    data: Populated,
    db: psycopg.Connection[Any],
    open_dashboard: Callable[..., TestClient],
    options: dict[str, Any],
) -> None:
    client = open_dashboard(**options)
    for url in (
        "/",
        f"/jobs/{data.failed_job}",
        "/jobs?state=failed&queue=webhooks",
        "/schedules",
        "/workers",
    ):
        page = client.get(url)
        assert page.status_code == 200
        assert 'method="post"' not in page.text
        assert "retry-failed" not in page.text and "/delete" not in page.text
    token = "any-token"  # no page has a form; a POST of any kind finds no route
    for url in (
        f"/jobs/{data.failed_job}/retry",
        f"/jobs/{data.failed_job}/cancel",
        f"/jobs/{data.failed_job}/delete",
    ):
        assert client.post(url, data={"csrf": token, "confirm": "yes"}).status_code == 404
    assert (
        client.post("/retry-failed", data={"csrf": token, "queue": "webhooks", "confirm": "yes"}).status_code
        == 404
    )
    assert client.get("/retry-failed?queue=webhooks").status_code == 404
    for url in ("/pause", "/resume"):
        assert client.post(url, data={"csrf": token, "queue": "webhooks"}).status_code == 404
    assert state_of(db, data.failed_job) == "failed"
    assert scalar(db, "SELECT count(*) FROM pgtq.queues WHERE paused") == 0


# -- roles, token, runner ----------------------------------------------------------------


def test_it_refuses_roles_that_cannot_do_their_part(
    dsn: str, login_role: Callable[[str], str], role_dsns: tuple[str, str]
) -> None:
    producer = make_conninfo(dsn, user=login_role("pgtq_producer"))
    reader, _admin = role_dsns
    with pytest.raises(pgtq.PermissionDeniedError, match=r"may not read pgtq.jobs: grant it pgtq_observer"):
        create_app(DashboardConfig(dsn=producer))
    with pytest.raises(
        pgtq.PermissionDeniedError, match=r"admin user .* may not retry jobs: grant it pgtq_admin"
    ):
        create_app(DashboardConfig(dsn=reader, admin_dsn=reader))
    with pytest.raises(pgtq.SchemaMissingError):
        create_app(DashboardConfig(dsn=make_conninfo(dsn, dbname="postgres")))


def test_the_reading_pool_cannot_write_even_as_an_admin(data: Populated, role_dsns: tuple[str, str]) -> None:
    _reader, admin = role_dsns
    pool = gateway.Pool(admin, size=1, name="test", read_only=True, statement_timeout=timedelta(seconds=5))
    pool.open()
    try:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            pool.call(gateway.retry, data.failed_job)
        assert pool.call(gateway.job_detail, data.failed_job).state == "failed"  # type: ignore[union-attr]
    finally:
        pool.close()


def test_with_a_token_every_request_needs_it(
    data: Populated, open_dashboard: Callable[..., TestClient]
) -> None:
    client = open_dashboard(host="0.0.0.0", token=TOKEN)
    for url in ("/", "/metrics", f"/jobs/{data.failed_job}", "/static/dashboard.css"):
        refused = client.get(url)
        assert refused.status_code == 401, url
        assert "Traceback" not in refused.text and "pgtq_queue_jobs" not in refused.text
    assert client.get("/", auth=("ops", TOKEN)).status_code == 200
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/", auth=("ops", TOKEN[:-1])).status_code == 401


def test_metrics_in_the_prometheus_format_match_the_jobs(
    dsn: str, db: psycopg.Connection[Any], open_dashboard: Callable[..., TestClient]
) -> None:
    db.execute("SELECT pgtq.push_many('mail', 'send', ARRAY['[1]', '[2]', '[3]']::jsonb[])")
    db.execute("SELECT pgtq.push('mail', 'send', run_at => now() + interval '1 hour')")
    db.execute("SELECT pgtq.pop('mail', 'w1')")
    db.execute("SELECT pgtq.register_worker('w1', 'h', 1, '{mail}')")
    text = open_dashboard().get("/metrics").text
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("pgtq_queue_jobs", (("queue", "mail"), ("state", "ready")))] == 2
    assert samples[("pgtq_queue_jobs", (("queue", "mail"), ("state", "running")))] == 1
    assert samples[("pgtq_queue_jobs", (("queue", "mail"), ("state", "scheduled")))] == 1
    assert samples[("pgtq_queue_workers", (("queue", "mail"),))] == 1
    assert samples[("pgtq_workers", ())] == len(WORKERS) + 1
    assert samples[("pgtq_queue_oldest_ready_age_seconds", (("queue", "mail"),))] >= 0


def run_dashboard(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module("pgtq.dashboard", *args)


def test_the_runner_refuses_bad_settings_in_one_line(dsn: str) -> None:
    public = run_dashboard("--dsn", dsn, "--host", "0.0.0.0")
    assert public.returncode == 2
    assert public.stderr.strip().splitlines() == [
        "pgtq dashboard: error: binding to 0.0.0.0 serves the dashboard beyond this machine: give it a token"
        " (--token or PGTQ_DASHBOARD_TOKEN), or bind to 127.0.0.1"
    ]
    unreachable = run_dashboard("--dsn", make_conninfo(dsn, dbname="no_such_database"))
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("pgtq dashboard: error: cannot connect to the pgtq database")
    assert "Traceback" not in unreachable.stderr


def test_the_runner_has_the_options_the_docs_name() -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    section = page[page.index("## Dashboard") : page.index("**Job lists stay fast")]
    usage = run_dashboard("--help")
    assert usage.returncode == 0
    for option in sorted(
        set(re.findall(r"`(--[a-z-]+)", section)) | set(re.findall(r"\((--[a-z-]+)", section))
    ):
        assert option in usage.stdout, option
    for variable in ("PGTQ_DSN", "PGTQ_ADMIN_DSN", "PGTQ_DASHBOARD_TOKEN"):
        assert variable in section and variable in usage.stdout
