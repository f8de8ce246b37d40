"""The workspace database: tables, migrations, and the store that reads and writes them."""

from voronka.store.workspace import WorkspaceStore

__all__ = ["WorkspaceStore"]
