"""A test app with a periodic task: ``beat`` every minute (the cron comes
from PERIODIC_CRON when set, so a test can give a bad one)."""

from __future__ import annotations

import os

import pgtq

q = pgtq.PgTq("periodic_queue", os.environ["PGTQ_DSN"])


@q.periodic(os.environ.get("PERIODIC_CRON", "* * * * *"), args=["tick-tock"], name="beat-every-minute")
@q.handler()
def beat(token: str) -> str:
    return token
