"""The command line's side of queues on several servers: what the
--listen-dsn options say. No database."""

from __future__ import annotations

import pytest

import pgtq
import pgtq.worker
from pgtq.cli._common import UsageError
from pgtq.cli._running import _listen_dsns

A = "host=db-a dbname=app"
B = "host=db-b dbname=app"
TARGETS = ["app.tasks:emails", "app.tasks:reports"]
QUEUES = [pgtq.PgTq("emails", A), pgtq.PgTq("reports", B)]


def test_no_option_one_dsn_or_one_per_server_by_a_queue_on_it() -> None:
    assert _listen_dsns(TARGETS, QUEUES, []) is None
    assert _listen_dsns(TARGETS[:1], QUEUES[:1], ["host=direct dbname=app"]) == "host=direct dbname=app"
    given = ["app.tasks:reports=host=db-b-direct port=5432 dbname=app"]
    assert _listen_dsns(TARGETS, QUEUES, given) == {B: "host=db-b-direct port=5432 dbname=app"}


@pytest.mark.parametrize(
    "given",
    [
        ["host=x dbname=app", "host=y dbname=app"],  # two plain DSNs: for which server?
        ["host=x dbname=app", "app.tasks:emails=host=y dbname=app"],  # a plain one beside per-server ones
        ["app.tasks:other=host=y dbname=app", "app.tasks:emails=host=y dbname=app"],  # not a target here
    ],
)
def test_listen_dsns_that_fit_no_server_are_refused(given: list[str]) -> None:
    with pytest.raises(UsageError, match="--listen-dsn takes one DSN, or MODULE:QUEUE_OBJECT=DSN"):
        _listen_dsns(TARGETS, QUEUES, given)


def test_one_plain_listen_dsn_for_queues_on_two_servers_is_refused_by_the_worker() -> None:
    given = _listen_dsns(TARGETS, QUEUES, ["app.tasks:other=host=y dbname=app"])
    assert given == "app.tasks:other=host=y dbname=app", "not a target of this worker: a plain DSN"
    with pytest.raises(ValueError, match="one listen DSN was given but the queues are on 2 servers"):
        pgtq.worker.Worker(QUEUES, listen_dsn=given)
