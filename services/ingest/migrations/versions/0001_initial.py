"""sources, per-source counts, QR codes

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("write_key_hash", sa.String(64), unique=True),
        sa.Column("url_secret_hash", sa.String(64)),
        sa.Column("signing_secret_encrypted", sa.LargeBinary),
        sa.Column("public_key", sa.String(4000)),
        sa.Column("rate_limit_per_s", sa.Float, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        schema="ingest",
    )
    op.create_table(
        "source_counts",
        sa.Column("source_id", sa.String(40), primary_key=True),
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("accepted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rejected", sa.BigInteger, nullable=False, server_default="0"),
        schema="ingest",
    )
    op.create_table(
        "qr_codes",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("source_id", sa.String(40), nullable=False),
        sa.Column("campaign_id", sa.String(200), nullable=False),
        sa.Column("target_url", sa.String(4096), nullable=False),
        sa.Column("name", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema="ingest",
    )


def downgrade() -> None:
    op.drop_table("qr_codes", schema="ingest")
    op.drop_table("source_counts", schema="ingest")
    op.drop_table("sources", schema="ingest")
