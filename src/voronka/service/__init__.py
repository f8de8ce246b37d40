"""The use cases adapters call: one workspace object over the store and the analytics."""

from voronka.service.workspace import Workspace

__all__ = ["Workspace"]
