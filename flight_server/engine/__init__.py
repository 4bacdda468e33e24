"""The database side: DuckDB opened with settings, sessions and their connections, execution into Arrow readers.

Usable from a notebook with no server: nothing here knows about Flight or gRPC.
"""

from .database import Database
from .errors import (
    AlreadyExistsError,
    CancelledError,
    ConstraintError,
    EngineError,
    InternalError,
    NotFoundError,
    PermissionDeniedError,
    QueryError,
    ResourceError,
    UnavailableError,
)
from .pool import SessionPool
from .session import Session

__all__ = [
    "AlreadyExistsError",
    "CancelledError",
    "ConstraintError",
    "Database",
    "EngineError",
    "InternalError",
    "NotFoundError",
    "PermissionDeniedError",
    "QueryError",
    "ResourceError",
    "Session",
    "SessionPool",
    "UnavailableError",
]
