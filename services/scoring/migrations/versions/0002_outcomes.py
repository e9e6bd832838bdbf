"""outcomes: won and lost deals, sales rejections, per lead

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
S = "scoring"


def upgrade() -> None:
    op.create_table(
        "outcomes",
        sa.Column("id", sa.String(300), primary_key=True),
        sa.Column("lead_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("deal_id", sa.String(200)),
        sa.Column("amount", sa.Numeric(18, 4)),
        sa.Column("currency", sa.String(3)),
        sa.Column("reason", sa.String(1000)),
        sa.Column("note", sa.String(2000)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        schema=S,
    )
    op.create_index("ix_scoring_outcomes_lead_id", "outcomes", ["lead_id"], schema=S)


def downgrade() -> None:
    op.drop_table("outcomes", schema=S)
