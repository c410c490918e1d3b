"""pgtq 0.1.0 -> 0.1.1: fixes, no new API (sql/pgtq--0.1.0--0.1.1.sql).

Revision ID: pgtq_0_1_1
Revises: pgtq_0_1_0
"""

from pgtq._db.migration import apply_sql_file, refuse_downgrade

revision = "pgtq_0_1_1"
down_revision = "pgtq_0_1_0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql_file("pgtq--0.1.0--0.1.1.sql")


def downgrade() -> None:
    refuse_downgrade("0.1.1")
