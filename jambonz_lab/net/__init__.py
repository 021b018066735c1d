"""I/O: the app server jambonz connects to (aiohttp), on the lab's loop thread."""

from __future__ import annotations

from .server import AppServer, Connection, ServerOptions
from .session import Closed, Service, Session

__all__ = ["AppServer", "Closed", "Connection", "ServerOptions", "Service", "Session"]
