"""directory documents, rule sets, users, lead read model, touches, assignments, loads, webhook deliveries

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
S = "routing"
TABLES = [
    "assignments",
    "documents",
    "identities",
    "leads",
    "round_robin_loads",
    "rule_sets",
    "touches",
    "users",
    "webhook_deliveries",
]


def upgrade() -> None:
    op.create_table(
        "assignments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("rep_id", sa.String(64)),
        sa.Column("team_id", sa.String(64)),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("why", JSONB, nullable=False),
        sa.Column("charge", sa.Float, nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accept_due", sa.DateTime(timezone=True)),
        sa.Column("contact_due", sa.DateTime(timezone=True)),
        sa.Column("accepted_at", sa.DateTime(timezone=True)),
        sa.Column("first_contact_at", sa.DateTime(timezone=True)),
        sa.Column("accept_breached", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("contact_breached", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("escalated_to", sa.String(64)),
        sa.Column("reason", sa.String(64)),
        sa.Column("note", sa.String(2000)),
        sa.Column("dispositions", JSONB, nullable=False, server_default="[]"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=S,
    )
    op.create_index("assignments_lead", "assignments", ["lead_id"], schema=S)
    op.create_index(
        "assignments_one_open_per_lead",
        "assignments",
        ["lead_id"],
        schema=S,
        unique=True,
        postgresql_where=sa.text("status IN ('queued', 'assigned', 'accepted')"),
    )
    op.create_index("assignments_rep_queue", "assignments", ["rep_id", "status", "score", "assigned_at"], schema=S)
    op.create_index("assignments_team_status", "assignments", ["team_id", "status"], schema=S)
    op.create_table(
        "documents",
        sa.Column("kind", sa.String(40), primary_key=True),
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "identities",
        sa.Column("identifier", sa.String(400), primary_key=True),
        sa.Column("lead_id", sa.String(200), nullable=False),
        schema=S,
    )
    op.create_index("ix_routing_identities_lead_id", "identities", ["lead_id"], schema=S)
    op.create_table(
        "leads",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("email", sa.String(320)),
        sa.Column("profile", JSONB, nullable=False, server_default="{}"),
        sa.Column("persona", sa.String(100)),
        sa.Column("segment", sa.String(100)),
        sa.Column("account", sa.String(400)),
        sa.Column("fit", sa.Float),
        sa.Column("engagement", sa.Float),
        sa.Column("total", sa.Float),
        sa.Column("grade", sa.String(8)),
        sa.Column("model_version", sa.Integer),
        sa.Column("stage", sa.String(30)),
        sa.Column("campaigns", JSONB, nullable=False, server_default="[]"),
        sa.Column("mql_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=S,
    )
    op.create_index("ix_routing_leads_account", "leads", ["account"], schema=S)
    op.create_index("ix_routing_leads_mql_at", "leads", ["mql_at"], schema=S)
    op.create_table(
        "round_robin_loads",
        sa.Column("team_id", sa.String(64), primary_key=True),
        sa.Column("rep_id", sa.String(64), primary_key=True),
        sa.Column("load", sa.Float, nullable=False),
        schema=S,
    )
    op.create_table(
        "rule_sets",
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("body", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "touches",
        sa.Column("event_id", sa.String(300), primary_key=True),
        sa.Column("identity_key", sa.String(400), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", JSONB, nullable=False),
        schema=S,
    )
    op.create_index("touches_identity_time", "touches", ["identity_key", "occurred_at"], schema=S)
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("rep_id", sa.String(64)),
        sa.Column("team_id", sa.String(64)),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema=S,
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("team_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(300), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("lead_id", sa.String(200), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status", sa.Integer),
        sa.Column("last_error", sa.String(1000)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        schema=S,
    )
    op.create_index("webhook_deliveries_due", "webhook_deliveries", ["status", "next_attempt_at"], schema=S)
    op.create_index("webhook_deliveries_event", "webhook_deliveries", ["event_id", "team_id"], schema=S, unique=True)
    create_bus_tables(op, S)


def downgrade() -> None:
    drop_bus_tables(op, S)
    for table in reversed(TABLES):
        op.drop_table(table, schema=S)
