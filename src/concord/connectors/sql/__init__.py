"""The practice-database (SQL) link: connector, change capture, mapping."""

from concord.connectors.sql.connector import SQLConnector
from concord.connectors.sql.options import SQLOptions

__all__ = ["SQLConnector", "SQLOptions"]
