"""The signup view against a real PostgreSQL test database (Django's test
runner makes it on the server PGTQ_DSN names): a committed signup gives the
member and the job, a failed one neither. TransactionTestCase, so the view's
transactions really commit, and the jobs are read on a connection of their own."""

import psycopg
from django.db import connection
from django.test import TransactionTestCase

from welcome.dsn import dsn_of


def jobs() -> list[tuple[str, list[object]]]:
    with psycopg.connect(dsn_of(connection)) as other:
        return other.execute("SELECT task, args FROM pgtq.jobs ORDER BY id").fetchall()


class SignupTests(TransactionTestCase):
    def test_a_signup_commits_the_member_and_the_job(self) -> None:
        response = self.client.post("/signup", {"email": "ann@example.com", "plan": "free"})
        self.assertEqual(response.status_code, 201)
        member_id = response.json()["id"]
        self.assertEqual(jobs(), [("send_welcome_email", [member_id, "ann@example.com"])])

    def test_a_failed_signup_leaves_neither(self) -> None:
        before = jobs()
        response = self.client.post("/signup", {"email": "bob@example.com", "plan": "platinum"})
        self.assertEqual(response.status_code, 400)
        self.assertEqual(jobs(), before)
        from welcome.models import Member

        self.assertFalse(Member.objects.filter(email="bob@example.com").exists())
