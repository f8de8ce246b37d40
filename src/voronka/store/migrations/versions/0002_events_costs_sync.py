"""events costs sync state snapshot

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:35:53.003352
"""

from alembic import op
import sqlalchemy as sa
import voronka.store.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('costs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=200), nullable=False),
    sa.Column('campaign', sa.String(length=200), server_default='', nullable=False),
    sa.Column('start', sa.Date(), nullable=False),
    sa.Column('end', sa.Date(), nullable=False),
    sa.Column('amount', voronka.store.types.Money(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_costs')),
    sa.UniqueConstraint('channel', 'campaign', 'start', 'end', name='uq_costs_period')
    )
    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('entity', sa.String(length=200), nullable=False),
    sa.Column('at', voronka.store.types.UTCTime(), nullable=False),
    sa.Column('event', sa.String(length=200), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=True),
    sa.Column('source', sa.String(length=50), server_default='', nullable=False),
    sa.Column('digest', sa.String(length=40), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('source', 'digest', name='uq_events_source_digest')
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_entity_at', ['entity', 'at'], unique=False)

    op.create_table('sync_state',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', voronka.store.types.UTCTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_sync_state'))
    )
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('snapshot', sa.Boolean(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_column('snapshot')

    op.drop_table('sync_state')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_entity_at')

    op.drop_table('events')
    op.drop_table('costs')
