"""One tree of errors. Every message says what is wrong, shows the value, and says how to fix it."""

from __future__ import annotations


class VoronkaError(Exception):
    """Base of every error Voronka raises on purpose."""


class InputError(VoronkaError, ValueError):
    """A value given by the user is malformed or out of range."""


class NotFoundError(InputError, LookupError):
    """A named thing (pipeline, stage, deal, user, reason) does not exist."""


class MoveError(InputError):
    """A stage move breaks a rule of the pipeline (no reason for lost, time before the last move, ...)."""


class StaleDealError(VoronkaError):
    """The deal changed since it was read: an update based on an old version is refused."""


class SchemaError(VoronkaError):
    """The workspace database is missing or at a schema version this Voronka cannot use."""


class DanglingReferenceError(VoronkaError):
    """A write would leave a row that refers to a row that does not exist; it was rolled back."""
