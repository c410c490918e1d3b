"""pgtq 0.1.0: the queue engine (sql/pgtq--0.1.0.sql).

Revision ID: pgtq_0_1_0
Revises:
"""

from pgtq._db.migration import apply_sql_file, drop_schema

revision = "pgtq_0_1_0"
down_revision = None
# Applications that include pgtq's revisions in their own alembic history
# name this branch: `alembic upgrade pgtq@head` (docs: "alembic").
branch_labels = ("pgtq",)
depends_on = None


def upgrade() -> None:
    apply_sql_file("pgtq--0.1.0.sql")


def downgrade() -> None:
    drop_schema()
