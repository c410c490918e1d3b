"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
"""

from pgtq._db.migration import apply_sql_file, refuse_downgrade

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    apply_sql_file("pgtq--A--B.sql")


def downgrade() -> None:
    refuse_downgrade("X.Y.Z")
