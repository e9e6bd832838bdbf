"""leads, identifiers, touches, transitions, model versions, bus tables

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.migrations import create_bus_tables, drop_bus_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
S = "scoring"


def upgrade() -> None:
    op.create_table(
        "leads",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("email", sa.String(320)),
        sa.Column("profile", JSONB, nullable=False),
        sa.Column("stage", sa.String(30)),
        sa.Column("persona", sa.String(100)),
        sa.Column("segment", sa.String(100)),
        sa.Column("account_key", sa.String(400)),
        sa.Column("fit", sa.Float, nullable=False, server_default="0"),
        sa.Column("engagement", sa.Float, nullable=False, server_default="0"),
        sa.Column("fired", sa.Integer, nullable=False, server_default="0"),
        sa.Column("grade", sa.String(8)),
        sa.Column("model_version", sa.Integer),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=S,
    )
    op.create_index("leads_updated_at", "leads", ["updated_at"], schema=S)
    op.create_table(
        "identifiers",
        sa.Column("identifier", sa.String(400), primary_key=True),
        sa.Column("lead_id", sa.String(64), nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
        schema=S,
    )
    op.create_index("ix_scoring_identifiers_lead_id", "identifiers", ["lead_id"], schema=S)
    op.create_table(
        "touches",
        sa.Column("event_id", sa.String(300), primary_key=True),
        sa.Column("lead_id", sa.String(64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        schema=S,
    )
    op.create_index("touches_lead_time", "touches", ["lead_id", "occurred_at"], schema=S)
    op.create_table(
        "transitions",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("lead_id", sa.String(64), nullable=False),
        sa.Column("from_stage", sa.String(30)),
        sa.Column("to_stage", sa.String(30), nullable=False),
        sa.Column("cause", sa.String(200), nullable=False),
        sa.Column("detail", sa.String(1000)),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        schema=S,
    )
    op.create_index("ix_scoring_transitions_lead_id", "transitions", ["lead_id"], schema=S)
    op.create_table(
        "model_versions",
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("active", sa.Boolean, nullable=False, server_default="false"),
        schema=S,
    )
    create_bus_tables(op, S)


def downgrade() -> None:
    drop_bus_tables(op, S)
    for table in ("model_versions", "transitions", "touches", "identifiers", "leads"):
        op.drop_table(table, schema=S)
