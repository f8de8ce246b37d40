"""initial workspace

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 18:24:16.383456
"""

from alembic import op
import sqlalchemy as sa
import voronka.store.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pipelines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('process', sa.String(length=20), nullable=False),
    sa.Column('reason_required', sa.Boolean(), nullable=False),
    sa.Column('created_at', voronka.store.types.UTCTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pipelines')),
    sa.UniqueConstraint('name', name=op.f('uq_pipelines_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('role', sa.String(length=16), server_default='manager', nullable=False),
    sa.Column('active', sa.Boolean(), server_default='1', nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('name', name=op.f('uq_users_name'))
    )
    op.create_table('loss_reasons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], name=op.f('fk_loss_reasons_pipeline_id_pipelines')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_loss_reasons')),
    sa.UniqueConstraint('pipeline_id', 'name', name='uq_loss_reasons_pipeline_name')
    )
    op.create_table('stages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('sla_days', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], name=op.f('fk_stages_pipeline_id_pipelines')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stages')),
    sa.UniqueConstraint('pipeline_id', 'name', name='uq_stages_pipeline_name')
    )
    op.create_table('deals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pipeline_id', sa.Integer(), nullable=False),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('stage_since', voronka.store.types.UTCTime(), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('amount', voronka.store.types.Money(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=True),
    sa.Column('segment', sa.String(length=200), nullable=True),
    sa.Column('created_at', voronka.store.types.UTCTime(), nullable=False),
    sa.Column('external_id', sa.String(length=200), nullable=True),
    sa.Column('external_source', sa.String(length=50), server_default='', nullable=False),
    sa.Column('custom', sa.JSON(), nullable=True),
    sa.Column('version', sa.Integer(), server_default='1', nullable=False),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_deals_owner_id_users')),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], name=op.f('fk_deals_pipeline_id_pipelines')),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_deals_stage_id_stages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deals')),
    sa.UniqueConstraint('external_source', 'external_id', name='uq_deals_external')
    )
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.create_index('ix_deals_pipeline_stage', ['pipeline_id', 'stage_id'], unique=False)

    op.create_table('activities',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('at', voronka.store.types.UTCTime(), nullable=False),
    sa.Column('due_at', voronka.store.types.UTCTime(), nullable=True),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_activities_author_id_users')),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], name=op.f('fk_activities_deal_id_deals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activities'))
    )
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.create_index('ix_activities_deal', ['deal_id'], unique=False)

    op.create_table('stage_moves',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('deal_id', sa.Integer(), nullable=False),
    sa.Column('pipeline_id', sa.Integer(), nullable=False),
    sa.Column('from_stage_id', sa.Integer(), nullable=True),
    sa.Column('stage_id', sa.Integer(), nullable=False),
    sa.Column('at', voronka.store.types.UTCTime(), nullable=False),
    sa.Column('author_id', sa.Integer(), nullable=True),
    sa.Column('reason_id', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['author_id'], ['users.id'], name=op.f('fk_stage_moves_author_id_users')),
    sa.ForeignKeyConstraint(['deal_id'], ['deals.id'], name=op.f('fk_stage_moves_deal_id_deals')),
    sa.ForeignKeyConstraint(['from_stage_id'], ['stages.id'], name=op.f('fk_stage_moves_from_stage_id_stages')),
    sa.ForeignKeyConstraint(['pipeline_id'], ['pipelines.id'], name=op.f('fk_stage_moves_pipeline_id_pipelines')),
    sa.ForeignKeyConstraint(['reason_id'], ['loss_reasons.id'], name=op.f('fk_stage_moves_reason_id_loss_reasons')),
    sa.ForeignKeyConstraint(['stage_id'], ['stages.id'], name=op.f('fk_stage_moves_stage_id_stages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stage_moves'))
    )
    with op.batch_alter_table('stage_moves', schema=None) as batch_op:
        batch_op.create_index('ix_stage_moves_deal', ['deal_id', 'id'], unique=False)
        batch_op.create_index('ix_stage_moves_pipeline_deal', ['pipeline_id', 'deal_id', 'id', 'stage_id', 'at', 'reason_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('stage_moves', schema=None) as batch_op:
        batch_op.drop_index('ix_stage_moves_pipeline_deal')
        batch_op.drop_index('ix_stage_moves_deal')

    op.drop_table('stage_moves')
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_index('ix_activities_deal')

    op.drop_table('activities')
    with op.batch_alter_table('deals', schema=None) as batch_op:
        batch_op.drop_index('ix_deals_pipeline_stage')

    op.drop_table('deals')
    op.drop_table('stages')
    op.drop_table('loss_reasons')
    op.drop_table('users')
    op.drop_table('pipelines')
