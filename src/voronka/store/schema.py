"""The workspace tables.

The move log is append-only; ``deals.stage_id`` and ``deals.stage_since`` are its cache.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from voronka.store.types import Money, UTCTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

pipelines = Table(
    "pipelines",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("process", String(20), nullable=False),
    Column("reason_required", Boolean, nullable=False),
    Column("created_at", UTCTime, nullable=False),
    # Changed by triggers (migration 0005) whenever the pipeline, its stages or its reasons change: the key of
    # the in-memory pipeline cache. Derived, so dumps leave it out.
    Column("catalogue_version", BigInteger, nullable=False, server_default="0", info={"derived": True}),
)

stages = Table(
    "stages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pipeline_id", ForeignKey("pipelines.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("position", Integer, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("sla_days", Float),
    UniqueConstraint("pipeline_id", "name", name="uq_stages_pipeline_name"),
)

loss_reasons = Table(
    "loss_reasons",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pipeline_id", ForeignKey("pipelines.id"), nullable=False),
    Column("name", String(200), nullable=False),
    UniqueConstraint("pipeline_id", "name", name="uq_loss_reasons_pipeline_name"),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("email", String(320)),
    Column("role", String(16), nullable=False, server_default="manager"),
    Column("active", Boolean, nullable=False, server_default="1"),
    # Web app accounts (migration 0003_auth): a user without a login or password cannot sign in.
    Column("login", String(100)),
    Column("password_hash", String(200)),
    Column("locale", String(8)),
    UniqueConstraint("login", name="uq_users_login"),
)

deals = Table(
    "deals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("pipeline_id", ForeignKey("pipelines.id"), nullable=False),
    Column("stage_id", ForeignKey("stages.id"), nullable=False),
    Column("stage_since", UTCTime, nullable=False),
    Column("title", String(500), nullable=False),
    Column("owner_id", ForeignKey("users.id")),
    Column("amount", Money),
    Column("currency", String(3), nullable=False),
    Column("source", String(200)),
    Column("segment", String(200)),
    Column("created_at", UTCTime, nullable=False),
    Column("external_id", String(200)),
    Column("external_source", String(50), nullable=False, server_default=""),
    Column("custom", JSON),
    Column("version", Integer, nullable=False, server_default="1"),
    # True when the deal came from a snapshot (an export of current stages): its path through stages is unknown.
    Column("snapshot", Boolean, nullable=False, server_default="0"),
    UniqueConstraint("external_source", "external_id", name="uq_deals_external"),
    Index("ix_deals_pipeline_stage", "pipeline_id", "stage_id"),
)

stage_moves = Table(
    "stage_moves",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("deal_id", ForeignKey("deals.id"), nullable=False),
    Column("pipeline_id", ForeignKey("pipelines.id"), nullable=False),
    Column("from_stage_id", ForeignKey("stages.id")),
    Column("stage_id", ForeignKey("stages.id"), nullable=False),
    Column("at", UTCTime, nullable=False),
    Column("author_id", ForeignKey("users.id")),
    Column("reason_id", ForeignKey("loss_reasons.id")),
    Column("comment", Text),
    # Covering index: a pipeline's log, in deal and log order, read without touching the table.
    Index("ix_stage_moves_pipeline_deal", "pipeline_id", "deal_id", "id", "stage_id", "at", "reason_id"),
    Index("ix_stage_moves_deal", "deal_id", "id"),
)

activities = Table(
    "activities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("deal_id", ForeignKey("deals.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("at", UTCTime, nullable=False),
    Column("due_at", UTCTime),
    Column("done", Boolean, nullable=False),
    Column("author_id", ForeignKey("users.id")),
    Column("note", Text),
    Index("ix_activities_deal", "deal_id"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entity", String(200), nullable=False),
    Column("at", UTCTime, nullable=False),
    Column("event", String(200), nullable=False),
    Column("properties", JSON),
    Column("source", String(50), nullable=False, server_default=""),
    # A digest of (entity, at, event, properties): importing the same log twice adds nothing.
    Column("digest", String(40), nullable=False),
    UniqueConstraint("source", "digest", name="uq_events_source_digest"),
    Index("ix_events_entity_at", "entity", "at"),
)

costs = Table(
    "costs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("channel", String(200), nullable=False),
    Column("campaign", String(200), nullable=False, server_default=""),
    Column("start", Date, nullable=False),
    Column("end", Date, nullable=False),  # exclusive
    Column("amount", Money, nullable=False),
    Column("currency", String(3), nullable=False),
    UniqueConstraint("channel", "campaign", "start", "end", name="uq_costs_period"),
)

sync_state = Table(
    "sync_state",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UTCTime, nullable=False),
)

# A target for one metric over one period, for a pipeline ('' = all) and a manager ('' = the whole team).
# Scope by name, not by foreign key: a plan outlives a pipeline's or a manager's removal and is shown as such.
plans = Table(
    "plans",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("metric", String(16), nullable=False),  # revenue | won | leads | activities
    Column("period", String(8), nullable=False),  # week | month | quarter
    Column("start", Date, nullable=False),
    Column("pipeline", String(200), nullable=False, server_default=""),
    Column("owner", String(200), nullable=False, server_default=""),
    Column("target", Money, nullable=False),
    Column("currency", String(3), nullable=False, server_default=""),  # revenue plans only
    Column("updated_at", UTCTime, nullable=False),
    UniqueConstraint("metric", "period", "start", "pipeline", "owner", name="uq_plans_scope"),
)

# Dated exchange rates: on ``day`` and after (until the next rate), 1 ``currency`` = ``rate`` ``quote``.
currency_rates = Table(
    "currency_rates",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("quote", String(3), nullable=False),
    Column("day", Date, nullable=False),
    Column("rate", Float, nullable=False),
    UniqueConstraint("currency", "quote", "day", name="uq_currency_rates_day"),
)

# -- web app accounts (migration 0003_auth) ---------------------------------------------------------------

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False),  # SHA-256 of the cookie's random token; the token is not kept
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", UTCTime, nullable=False),
    Column("expires_at", UTCTime, nullable=False),
    UniqueConstraint("token_hash", name="uq_web_sessions_token_hash"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("token_hash", String(64), nullable=False),
    Column("user_id", ForeignKey("users.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", UTCTime, nullable=False),
    Column("revoked", Boolean, nullable=False, server_default="0"),
    UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
)
