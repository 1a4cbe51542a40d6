"""wasmdeck-market: the plugin marketplace server (docs/marketplace.md).

A separate program in the wasmdeck repository: it shares the package format
and signing code with wasmdeck (through ``wasmdeck.packages``) and nothing
else. State is in SQLite or PostgreSQL and the package files in a directory
or an OCI registry, so several processes can serve one marketplace.
"""

from ._app import create_app
from ._blobs import ARTIFACT_TYPE, PACKAGE_MEDIA_TYPE, BlobStore, FileBlobs, OciBlobs
from ._db import Database, PostgresDatabase, SQLiteDatabase, open_database
from ._errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    TooLarge,
    Unauthorized,
)
from ._limits import Limits
from ._service import Account, Market, rotation_message

__all__ = [
    "ARTIFACT_TYPE",
    "PACKAGE_MEDIA_TYPE",
    "Account",
    "BadRequest",
    "BlobStore",
    "Conflict",
    "Database",
    "FileBlobs",
    "Forbidden",
    "Limits",
    "Market",
    "NotFound",
    "OciBlobs",
    "PostgresDatabase",
    "RateLimited",
    "SQLiteDatabase",
    "ServerError",
    "TooLarge",
    "Unauthorized",
    "create_app",
    "open_database",
    "rotation_message",
]
