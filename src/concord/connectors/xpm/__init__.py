"""Xero Practice Manager (API v3.1): see ``connector.py`` and ``docs/xpm.md``."""

from concord.connectors.xpm.connector import XpmConnector, XpmOptions

__all__ = ["XpmConnector", "XpmOptions"]
