"""plans: targets per metric, period, pipeline and manager; dated currency rates

Revision ID: 0004_plans
Revises: 0002
Create Date: 2026-12-02 23:50:00
"""

from alembic import op
import sqlalchemy as sa
import voronka.store.types


revision = '0004_plans'
down_revision = '0003_auth'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=16), nullable=False),
    sa.Column('period', sa.String(length=8), nullable=False),
    sa.Column('start', sa.Date(), nullable=False),
    sa.Column('pipeline', sa.String(length=200), server_default='', nullable=False),
    sa.Column('owner', sa.String(length=200), server_default='', nullable=False),
    sa.Column('target', voronka.store.types.Money(), nullable=False),
    sa.Column('currency', sa.String(length=3), server_default='', nullable=False),
    sa.Column('updated_at', voronka.store.types.UTCTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plans')),
    sa.UniqueConstraint('metric', 'period', 'start', 'pipeline', 'owner', name='uq_plans_scope')
    )
    op.create_table('currency_rates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('quote', sa.String(length=3), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('rate', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_currency_rates')),
    sa.UniqueConstraint('currency', 'quote', 'day', name='uq_currency_rates_day')
    )


def downgrade() -> None:
    op.drop_table('currency_rates')
    op.drop_table('plans')
