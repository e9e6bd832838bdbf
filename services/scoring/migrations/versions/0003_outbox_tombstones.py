"""outbox rows without a value: tombstones for erased leads

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None
S = "scoring"


def upgrade() -> None:
    op.alter_column("outbox", "value", existing_type=sa.LargeBinary(), nullable=True, schema=S)


def downgrade() -> None:
    op.execute(f"DELETE FROM {S}.outbox WHERE value IS NULL")
    op.alter_column("outbox", "value", existing_type=sa.LargeBinary(), nullable=False, schema=S)
