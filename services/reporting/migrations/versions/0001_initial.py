"""read models (touches, identities, leads, stages, deals, assignments), registry (campaigns, costs, targets), bus

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
S = "reporting"
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "touches",
        sa.Column("event_id", sa.String(300), primary_key=True),
        sa.Column("identity_key", sa.String(400), nullable=False),
        sa.Column("occurred_at", WHEN, nullable=False),
        sa.Column("type", sa.String(50), nullable=False),
        sa.Column("channel", sa.String(50)),
        sa.Column("campaign_id", sa.String(200)),
        sa.Column("utm_source", sa.String(200)),
        sa.Column("utm_medium", sa.String(200)),
        sa.Column("utm_campaign", sa.String(200)),
        sa.Column("machine_generated", sa.Boolean, nullable=False, server_default="false"),
        schema=S,
    )
    op.create_index("touches_identity", "touches", ["identity_key"], schema=S)
    op.create_table(
        "identity_links",
        sa.Column("identifier", sa.String(400), primary_key=True),
        sa.Column("other", sa.String(400), primary_key=True),
        schema=S,
    )
    op.create_table(
        "leads",
        sa.Column("lead_id", sa.String(200), primary_key=True),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("persona", sa.String(100)),
        sa.Column("segment", sa.String(100)),
        sa.Column("account", sa.String(400)),
        schema=S,
    )
    op.create_table(
        "lead_identifiers",
        sa.Column("identifier", sa.String(400), primary_key=True),
        sa.Column("lead_id", sa.String(200), primary_key=True),
        schema=S,
    )
    op.create_table(
        "merges",
        sa.Column("absorbed", sa.String(200), primary_key=True),
        sa.Column("survivor", sa.String(200), nullable=False),
        schema=S,
    )
    op.create_table(
        "stage_changes",
        sa.Column("event_id", sa.String(300), primary_key=True),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("from_stage", sa.String(30)),
        sa.Column("to_stage", sa.String(30), nullable=False),
        sa.Column("cause", sa.String(200)),
        sa.Column("at", WHEN, nullable=False),
        schema=S,
    )
    op.create_index("ix_reporting_stage_changes_lead_id", "stage_changes", ["lead_id"], schema=S)
    op.create_table(
        "deals",
        sa.Column("deal_id", sa.String(200), primary_key=True),
        sa.Column("lead_id", sa.String(200)),
        sa.Column("contact_email", sa.String(320)),
        sa.Column("amount", sa.Numeric(22, 4), nullable=False, server_default="0"),
        sa.Column("currency", sa.String(3), nullable=False, server_default="XXX"),
        sa.Column("stage", sa.String(100)),
        sa.Column("created_at", WHEN),
        sa.Column("won_at", WHEN),
        sa.Column("lost_at", WHEN),
        schema=S,
    )
    op.create_table(
        "assignment_events",
        sa.Column("event_id", sa.String(300), primary_key=True),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("assignment_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("rep_id", sa.String(200)),
        sa.Column("team_id", sa.String(200)),
        sa.Column("detail", sa.String(200)),
        sa.Column("at", WHEN, nullable=False),
        schema=S,
    )
    op.create_index("ix_reporting_assignment_events_lead_id", "assignment_events", ["lead_id"], schema=S)
    op.create_table(
        "campaigns",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("channel", sa.String(50), nullable=False),
        sa.Column("type", sa.String(30), nullable=False),
        sa.Column("starts_on", sa.Date),
        sa.Column("ends_on", sa.Date),
        sa.Column("utm", JSONB, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "costs",
        sa.Column("campaign_id", sa.String(200), primary_key=True),
        sa.Column("period_start", sa.Date, primary_key=True),
        sa.Column("period_end", sa.Date, primary_key=True),
        sa.Column("amount", sa.Numeric(22, 4), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "targets",
        sa.Column("period", sa.String(20), primary_key=True),
        sa.Column("metric", sa.String(20), primary_key=True),
        sa.Column("value", sa.Numeric(22, 4), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    create_bus_tables(op, S)


def downgrade() -> None:
    drop_bus_tables(op, S)
    for table in (
        "targets",
        "costs",
        "campaigns",
        "assignment_events",
        "deals",
        "stage_changes",
        "merges",
        "lead_identifiers",
        "leads",
        "identity_links",
        "touches",
    ):
        op.drop_table(table, schema=S)
