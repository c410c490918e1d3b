"""A minimal Django project whose signup view creates a member and pushes
"send welcome email" inside ``transaction.atomic()``, on Django's own
connection (psycopg 3 backend): both commit, or neither."""
