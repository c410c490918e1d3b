"""The queue and its task: ``pgtq worker welcome.tasks:q`` runs it."""

import os

import pgtq

q = pgtq.PgTq("emails", os.environ["PGTQ_DSN"])


@q.handler(max_attempts=10)
def send_welcome_email(member_id: int, email: str) -> dict[str, str]:
    """Send the e-mail (a real app would call its mail service here)."""
    return {"sent_to": email}
