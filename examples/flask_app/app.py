"""A Flask app that creates a user and pushes "send welcome email" in the
same transaction.

    PGTQ_DSN="dbname=app" flask --app app run      # POST /users {"email": ..., "plan": "free"}
    PGTQ_DSN="dbname=app" pgtq worker app:q         # sends the e-mails

The user, their subscription and the job commit together: a request that
fails after the push (an unknown plan breaks a CHECK constraint) rolls
all three back, so nobody is welcomed who never signed up, and everybody
who signed up is welcomed. Tables: schema.sql.
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from flask import Flask, request
from psycopg_pool import ConnectionPool

import pgtq

DSN = os.environ["PGTQ_DSN"]

q = pgtq.PgTq("emails", DSN)


@q.handler(max_attempts=10)
def send_welcome_email(user_id: int, email: str) -> dict[str, Any]:
    """Send the e-mail (here: record that it was sent)."""
    with psycopg.connect(DSN) as conn:
        conn.execute("UPDATE users SET welcomed_at = now() WHERE id = %s", [user_id])
    return {"sent_to": email}


def create_app(pool: ConnectionPool[Any] | None = None) -> Flask:
    """The app; its connections come from ``pool`` (one per request)."""
    app = Flask(__name__)
    connections = pool or ConnectionPool(DSN, min_size=1, max_size=4)

    @app.post("/users")
    def create_user() -> tuple[dict[str, Any], int]:
        body = request.get_json()
        try:
            # One transaction: committed at the end of the block, rolled back if it raises.
            with connections.connection() as conn:
                row = conn.execute(
                    "INSERT INTO users (email) VALUES (%s) RETURNING id", [body["email"]]
                ).fetchone()
                assert row is not None
                user_id = row[0]
                send_welcome_email.options(conn=conn).push(user_id, body["email"])
                conn.execute(
                    "INSERT INTO subscriptions (user_id, plan) VALUES (%s, %s)", [user_id, body["plan"]]
                )
        except psycopg.errors.IntegrityError as error:
            return {"error": error.diag.message_primary or "refused"}, 400
        return {"id": user_id}, 201

    return app
