"""What the control loop learns, kept in the store so every replica can serve it: a job's
explanation, a site's health and inventory (the plan summary lives in ``settings``).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("explanation", sa.JSON))
    with op.batch_alter_table("sites") as batch:
        batch.add_column(sa.Column("healthy", sa.Boolean))
        batch.add_column(sa.Column("inventory", sa.JSON))


def downgrade() -> None:
    with op.batch_alter_table("sites") as batch:
        batch.drop_column("inventory")
        batch.drop_column("healthy")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("explanation")
