"""pipelines.catalogue_version: changed by triggers whenever a pipeline, its stages or its loss reasons change

Revision ID: 0005_catalogue_version
Revises: 0004_plans

A move reads its deal's pipeline (stages, reasons) on every request; with this version read in the same
statement as the deal, the server keeps pipelines in memory and reads them again only when they changed
(``WorkspaceStore._cached_pipeline``). Triggers, not the application, change it, so that no writer (an import,
a restore, a hand-written UPDATE) can forget to. The new value is random (not a counter): a pipeline deleted
and made again under the same id never comes back with a version a cache has seen.
"""

from alembic import op
import sqlalchemy as sa


revision = '0005_catalogue_version'
down_revision = '0004_plans'
branch_labels = None
depends_on = None

_CHILDREN = ('stages', 'loss_reasons')


def upgrade() -> None:
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('catalogue_version', sa.BigInteger(), server_default='0', nullable=False))
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("""
            CREATE FUNCTION voronka_catalogue_changed() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_TABLE_NAME = 'pipelines' THEN
                    NEW.catalogue_version := (random() * 9.2e18)::bigint;
                    RETURN NEW;
                END IF;
                IF TG_OP <> 'INSERT' THEN
                    UPDATE pipelines SET catalogue_version = (random() * 9.2e18)::bigint WHERE id = OLD.pipeline_id;
                END IF;
                IF TG_OP <> 'DELETE' THEN
                    UPDATE pipelines SET catalogue_version = (random() * 9.2e18)::bigint WHERE id = NEW.pipeline_id;
                END IF;
                RETURN NULL;
            END $$
        """)
        op.execute(
            "CREATE TRIGGER pipelines_catalogue BEFORE INSERT OR UPDATE OF name, process, reason_required "
            "ON pipelines FOR EACH ROW EXECUTE FUNCTION voronka_catalogue_changed()"
        )
        for table in _CHILDREN:
            op.execute(
                f"CREATE TRIGGER {table}_catalogue AFTER INSERT OR UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION voronka_catalogue_changed()"
            )
        op.execute("UPDATE pipelines SET catalogue_version = (random() * 9.2e18)::bigint")
        return
    # SQLite: random() is a random 64-bit integer; "UPDATE OF" columns keep the triggers from firing each other.
    bump = "UPDATE pipelines SET catalogue_version = random() WHERE id"
    op.execute(f"CREATE TRIGGER pipelines_catalogue_insert AFTER INSERT ON pipelines BEGIN {bump} = NEW.id; END")
    op.execute(
        "CREATE TRIGGER pipelines_catalogue_update AFTER UPDATE OF name, process, reason_required ON pipelines "
        f"BEGIN {bump} = NEW.id; END"
    )
    for table in _CHILDREN:
        op.execute(f"CREATE TRIGGER {table}_catalogue_insert AFTER INSERT ON {table} BEGIN {bump} = NEW.pipeline_id; END")
        op.execute(
            f"CREATE TRIGGER {table}_catalogue_update AFTER UPDATE ON {table} "
            f"BEGIN {bump} IN (OLD.pipeline_id, NEW.pipeline_id); END"
        )
        op.execute(f"CREATE TRIGGER {table}_catalogue_delete AFTER DELETE ON {table} BEGIN {bump} = OLD.pipeline_id; END")
    op.execute("UPDATE pipelines SET catalogue_version = random()")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        for table in ('pipelines', *_CHILDREN):
            op.execute(f"DROP TRIGGER {table}_catalogue ON {table}")
        op.execute("DROP FUNCTION voronka_catalogue_changed()")
    else:
        op.execute("DROP TRIGGER pipelines_catalogue_insert")
        op.execute("DROP TRIGGER pipelines_catalogue_update")
        for table in _CHILDREN:
            for when in ('insert', 'update', 'delete'):
                op.execute(f"DROP TRIGGER {table}_catalogue_{when}")
    with op.batch_alter_table('pipelines', schema=None) as batch_op:
        batch_op.drop_column('catalogue_version')
