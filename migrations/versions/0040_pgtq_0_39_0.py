"""pgtq 0.38.0 -> 0.39.0 (sql/pgtq--0.38.0--0.39.0.sql).

Revision ID: pgtq_0_39_0
Revises: pgtq_0_38_0
"""

from pgtq._db.migration import apply_sql_file, refuse_downgrade

revision = "pgtq_0_39_0"
down_revision = "pgtq_0_38_0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql_file("pgtq--0.38.0--0.39.0.sql")


def downgrade() -> None:
    refuse_downgrade("0.39.0")
