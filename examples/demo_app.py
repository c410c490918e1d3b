"""The demo's tasks: what an application would define in its own module.

Run a worker for it with:  pgtq worker demo_app:q
"""

from __future__ import annotations

import os

import pgtq

q = pgtq.PgTq("demo", os.environ.get("PGTQ_DSN", "dbname=pgtq_demo"))


@q.handler()
def send_welcome_email(user: str) -> str:
    """Pretend to send an email."""
    return f"welcome email sent to {user}"


@q.handler(name="resize_image")
def resize(path: str, width: int = 640) -> dict[str, object]:
    """Pretend to resize an image; the stored task name is 'resize_image'."""
    return {"path": path, "width": width}


@q.handler(max_attempts=3)
def charge_card(order_id: int, cents: int) -> str:
    """Fails on its first attempt (a flaky payment gateway), then succeeds."""
    task = pgtq.current_task()
    if task is not None and task.attempt == 1:
        raise ConnectionError(f"payment gateway timed out for order {order_id}")
    return f"charged {cents / 100:.2f} for order {order_id}"


@q.handler()
def send_reminder(user: str) -> str:
    """Pushed to run a few seconds later."""
    return f"reminder sent to {user}"
