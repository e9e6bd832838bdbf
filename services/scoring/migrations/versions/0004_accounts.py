"""accounts: the company facts collected from every contact of an account, for account fit rules

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
S = "scoring"


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("key", sa.String(400), primary_key=True),
        sa.Column("profile", JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("accounts", schema=S)
