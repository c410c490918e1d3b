"""The dashboard's pure parts, without a database: page cursors, the
token and host checks, CSRF tokens, chart scaling, the overview's sums and
the pages' formats."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from pgtq._db import queries
from pgtq._inspection import HistoryPoint, JobFilter, JobRow, ListOrder, Metric
from pgtq.dashboard import _security
from pgtq.dashboard._app import jobs_url, template_environment
from pgtq.dashboard._chart import Frame, axis_ticks, depth_chart, nice_maximum, throughput_chart, tick_label
from pgtq.dashboard._config import DashboardConfig
from pgtq.dashboard._format import duration, relative, when
from pgtq.dashboard._overview import summarize
from pgtq.dashboard._paging import CursorError, decode_cursor, encode_cursor
from pgtq.dashboard._security import (
    BindingError,
    Guard,
    allowed_host_names,
    check_binding,
    csrf_matches,
    host_name,
    presented_token,
    token_matches,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
TOKEN = "s3cret-token-0123456789"

# -- page cursors ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "key"),
    [
        (ListOrder.NEWEST_FINISHED, (T0, 42)),
        (ListOrder.NEXT_DUE, (T0 + timedelta(microseconds=7), 1)),
        (ListOrder.LEASE_EXPIRY, (T0, 2**63 - 1)),
        (ListOrder.POP_ORDER, ("émails; DROP TABLE x", -5, 9)),
        (ListOrder.NEWEST, (1,)),
    ],
)
def test_a_cursor_gives_back_the_key_it_was_made_from(order: ListOrder, key: tuple[object, ...]) -> None:
    cursor = encode_cursor(order, key)
    assert cursor.isascii() and "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(order, cursor) == key


def test_a_cursor_belongs_to_its_list_order() -> None:
    cursor = encode_cursor(ListOrder.NEWEST_FINISHED, (T0, 1))
    with pytest.raises(CursorError, match="another state filter"):
        decode_cursor(ListOrder.NEXT_DUE, cursor)


def _raw(payload: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


NEWEST, FINISHED = ListOrder.NEWEST, ListOrder.NEWEST_FINISHED


@pytest.mark.parametrize(
    ("order", "cursor", "problem"),
    [
        (NEWEST, "not base64!", "malformed"),
        (NEWEST, _raw({"a": 1}), "malformed"),
        (NEWEST, _raw(["newest", [1, 2]]), "malformed"),
        (NEWEST, _raw(["newest", ["1"]]), "bad number"),
        (NEWEST, _raw(["newest", [True]]), "bad number"),
        (NEWEST, _raw(["newest", [2**63]]), "bad number"),
        (FINISHED, _raw(["finished", ["yesterday", 1]]), "bad time"),
        (FINISHED, _raw(["finished", ["2030-01-01T12:00:00", 1]]), "without a time zone"),
        (NEWEST, "A" * 3000, "too long"),
    ],
)
def test_a_bad_cursor_is_refused_with_its_reason(order: ListOrder, cursor: str, problem: str) -> None:
    with pytest.raises(CursorError, match=problem):
        decode_cursor(order, cursor)


def test_each_list_order_takes_the_key_of_its_index() -> None:
    row = JobRow(7, "q", "t", "ready", 3, 0, 25, T0, T0, None, T0 + timedelta(1), None, None, "[]", None)
    assert row.key(ListOrder.POP_ORDER) == ("q", 3, 7)
    assert row.key(ListOrder.NEWEST_FINISHED) == (T0 + timedelta(1), 7)
    assert row.key(ListOrder.NEXT_DUE) == (T0, 7)
    assert row.key(ListOrder.NEWEST) == (7,)
    assert [JobFilter(state=s).order.value for s in ("ready", "scheduled", "running", "done", "failed")] == [
        "pop",
        "due",
        "lease",
        "finished",
        "finished",
    ]
    assert JobFilter().order is ListOrder.NEWEST
    with pytest.raises(ValueError, match="unknown job state 'bogus'"):
        JobFilter(state="bogus")


# -- binding, token, host, CSRF ----------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_needs_no_token(host: str) -> None:
    check_binding(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "dashboard.example"])
def test_any_other_address_needs_a_token(host: str) -> None:
    with pytest.raises(BindingError, match="give it a token"):
        check_binding(host, None)
    check_binding(host, TOKEN)
    with pytest.raises(ValueError, match="give it a token"):
        DashboardConfig(dsn="dbname=x", host=host)


def test_a_short_token_is_refused() -> None:
    with pytest.raises(BindingError, match="at least 16 characters, got 5"):
        check_binding("127.0.0.1", "short")


def test_the_token_comes_as_bearer_or_as_the_basic_password() -> None:
    basic = base64.b64encode(f"anyone:{TOKEN}".encode()).decode()
    assert presented_token(f"Bearer {TOKEN}") == TOKEN
    assert presented_token(f"basic {basic}") == TOKEN
    assert presented_token("Basic !!!") is None
    assert presented_token("Basic " + base64.b64encode(b"no-colon").decode()) is None
    assert presented_token("Digest abc") is None
    assert presented_token(None) is None


def test_tokens_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = _security.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(_security.hmac, "compare_digest", spy)
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN + "x", TOKEN)
    assert not token_matches(None, TOKEN)
    assert csrf_matches("abc", "abc")
    assert not csrf_matches("abc", "abd")
    assert not csrf_matches(None, "abc")
    assert not csrf_matches("", "")
    assert compared == [
        (TOKEN.encode(), TOKEN.encode()),
        ((TOKEN + "x").encode(), TOKEN.encode()),
        (b"abc", b"abc"),
        (b"abc", b"abd"),
    ]


def test_host_names_without_their_port() -> None:
    assert host_name("127.0.0.1:8080") == "127.0.0.1"
    assert host_name("LocalHost") == "localhost"
    assert host_name("[::1]:8080") == "::1"
    assert host_name(None) == ""
    assert allowed_host_names("127.0.0.1", []) == {"localhost", "127.0.0.1", "::1"}
    assert allowed_host_names("127.0.0.1", ["tunnel.example"]) >= {"tunnel.example", "localhost"}
    assert allowed_host_names("0.0.0.0", []) is None
    assert allowed_host_names("0.0.0.0", ["ops.example"]) == {"ops.example"}


def _guarded(token: str | None, hosts: frozenset[str] | None) -> TestClient:
    app = Starlette(
        routes=[Route("/", lambda _request: PlainTextResponse("inside"))],
        middleware=[Middleware(Guard, token=token, allowed_hosts=hosts)],
    )
    return TestClient(app, base_url="http://127.0.0.1")


def test_the_guard_asks_for_the_token() -> None:
    client = _guarded(TOKEN, None)
    refused = client.get("/")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    assert "inside" not in refused.text
    assert client.get("/", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
    assert client.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).text == "inside"
    assert client.get("/", auth=("ops", TOKEN)).text == "inside"


def test_the_guard_serves_loopback_names_only_when_bound_to_loopback() -> None:
    client = _guarded(None, allowed_host_names("127.0.0.1", []))
    assert client.get("/").text == "inside"
    assert client.get("/", headers={"Host": "localhost:8080"}).text == "inside"
    rebound = client.get("/", headers={"Host": "attacker.example"})
    assert rebound.status_code == 400
    assert "inside" not in rebound.text


def test_every_response_carries_the_security_headers() -> None:
    for response in (_guarded(None, None).get("/"), _guarded(TOKEN, None).get("/")):
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "script-src" not in response.headers["content-security-policy"]  # default-src 'none'
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_templates_escape_what_they_show() -> None:
    environment = template_environment()
    assert environment.autoescape is True
    rendered = environment.from_string("<p>{{ name }}</p>").render(name="<script>x</script>")
    assert rendered == "<p>&lt;script&gt;x&lt;/script&gt;</p>"
    assert jobs_url(queue="a&b", task=None, state="") == "/jobs?queue=a%26b"


# -- charts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "top"),
    [(0, 5), (3, 5), (5, 5), (6, 10), (13, 20), (21, 50), (250, 500), (1000, 1000), (1001, 2000)],
)
def test_an_axis_ends_at_a_round_number_above_the_data(value: float, top: float) -> None:
    assert nice_maximum(value) == top


def test_ticks_and_their_labels() -> None:
    assert axis_ticks(20) == [0, 4, 8, 12, 16, 20]
    assert [tick_label(v) for v in (0, 2.5, 800, 1000, 1500, 2_000_000)] == [
        "0",
        "2.5",
        "800",
        "1k",
        "1.5k",
        "2M",
    ]


def test_a_frame_maps_its_corners_and_clamps_outside_values() -> None:
    frame = Frame(T0, T0 + timedelta(hours=1), 100)
    assert (frame.x(T0), frame.y(0)) == (frame.left, frame.bottom)
    assert (frame.x(T0 + timedelta(hours=1)), frame.y(100)) == (frame.right, frame.top)
    assert frame.x(T0 - timedelta(hours=5)) == frame.left
    assert frame.y(1000) == frame.top
    assert frame.y(50) == (frame.top + frame.bottom) / 2


def _point(minute: int, queue: str, ready: int = 0, completed: int = 0, failed: int = 0) -> HistoryPoint:
    return HistoryPoint(T0 + timedelta(minutes=minute), queue, 0, ready, 0, completed, failed, 0)


def test_the_depth_chart_draws_a_line_per_queue_with_zeros_where_a_queue_has_no_row() -> None:
    points = [
        _point(10, "b", ready=40),
        _point(20, "a", ready=10),
        _point(20, "b", ready=80),
        _point(-90, "old", 5),
    ]
    chart = depth_chart(points, T0 + timedelta(minutes=30), timedelta(hours=1))
    assert [line.label for line in chart.lines] == ["a", "b"]  # "old" is outside the hour
    assert chart.frame.maximum == 100
    a_points = [tuple(map(float, pair.split(","))) for pair in chart.lines[0].points.split()]
    assert [y for _x, y in a_points] == [chart.frame.y(0), chart.frame.y(10)]  # no row at minute 10: zero
    assert a_points[0][0] < a_points[1][0]
    assert not chart.empty
    assert depth_chart([], T0).empty


def test_the_throughput_chart_stacks_failed_on_completed() -> None:
    points = [_point(5, "a", completed=30, failed=0), _point(5, "b", completed=10, failed=20), _point(6, "a")]
    chart = throughput_chart(points, T0 + timedelta(minutes=30), timedelta(hours=1))
    assert chart.frame.maximum == 100
    completed, failed = chart.bars  # minute 6 finished nothing: no bar
    assert (completed.css_class, failed.css_class) == ("completed", "failed")
    assert completed.y + completed.height == pytest.approx(chart.frame.bottom, abs=0.11)
    assert failed.y + failed.height == pytest.approx(completed.y, abs=0.11)
    assert completed.height == pytest.approx(2 * failed.height, abs=0.2)  # 40 completed, 20 failed
    assert failed.title.endswith("20 failed")


# -- overview and formats ---------------------------------------------------------------------


def test_the_overview_sums_the_metrics_per_queue() -> None:
    metrics = [
        Metric("jobs", "emails", None, "ready", 7),
        Metric("jobs", "emails", None, "running", 2),
        Metric("oldest_ready_age_seconds", "emails", None, None, 95.5),
        Metric("recent_completed", "emails", "send", None, 100),
        Metric("recent_completed", "emails", "digest", None, 5),
        Metric("recent_failed", "emails", "send", None, 3),
        Metric("workers", "emails", None, None, 2),
        Metric("workers_total", None, None, None, 3),
        Metric("history_age_seconds", None, None, None, 30),
    ]
    overview = summarize(metrics, {"images": 4}, ["archive"], [], T0)
    assert [q.name for q in overview.queues] == ["archive", "emails", "images"]
    emails = overview.queues[1]
    assert (emails.ready, emails.running, emails.completed_last_hour, emails.failed_last_hour) == (
        7,
        2,
        105,
        3,
    )
    assert (emails.oldest_ready_seconds, emails.workers) == (95.5, 2)
    assert overview.queues[2].failed_kept == 4
    assert overview.workers_total == 3
    assert overview.notes == []
    assert "No history sample yet" in summarize([], {}, [], [], T0).notes[0]
    stale = summarize([Metric("history_age_seconds", None, None, None, 600)], {}, [], [], T0)
    assert "10 minutes old" in stale.notes[0]


def test_the_overview_shows_pause_and_limits() -> None:
    metrics = [
        Metric("jobs", "emails", None, "ready", 7),
        Metric("paused", "emails", None, None, 1),
        Metric("max_running", "emails", None, None, 2),
        Metric("paused", "quiet", None, None, 0),  # limited, not paused, no jobs: still shown
        Metric("rate_limit", "quiet", None, None, 20),
        Metric("rate_period_seconds", "quiet", None, None, 1),
    ]
    emails, quiet = summarize(metrics, {}, [], [], T0).queues
    assert (emails.name, emails.paused, emails.limits) == ("emails", True, "max 2 running")
    assert (quiet.name, quiet.paused, quiet.limits) == ("quiet", False, "20 per 1 s")
    assert summarize([Metric("jobs", "x", None, "ready", 1)], {}, [], [], T0).queues[0].limits == ""


def test_times_and_durations_read_well() -> None:
    assert when(T0) == "2030-01-01 12:00:00 UTC"
    assert when(None) == ""
    assert [duration(s) for s in (0, 42.4, 60, 303, 3600, 7260, 90000)] == [
        "0 s",
        "42 s",
        "1 min",
        "5 min 3 s",
        "1 h",
        "2 h 1 min",
        "1 d 1 h",
    ]
    assert relative(T0 - timedelta(minutes=5), T0) == "5 min ago"
    assert relative(T0 + timedelta(seconds=12), T0) == "in 12 s"
    assert relative(T0, T0) == "now"


def test_a_job_reads_only_the_optional_columns_it_knows() -> None:
    query = queries.job_detail(7, ["job_key"])
    assert '"job_key"' in query.sql.as_string(None)  # type: ignore[union-attr]
    with pytest.raises(ValueError, match=r"not an optional column of pgtq.jobs: \['lease'\]"):
        queries.job_detail(7, ["lease"])
