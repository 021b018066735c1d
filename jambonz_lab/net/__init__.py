"""I/O: the app server jambonz connects to (aiohttp), on the lab's loop thread."""

from __future__ import annotations

from .audio import AudioService, AudioStream
from .server import AppServer, Connection, ServerOptions
from .session import Service, Session, SocketClose

__all__ = [
    "AppServer",
    "AudioService",
    "AudioStream",
    "SocketClose",
    "Connection",
    "ServerOptions",
    "Service",
    "Session",
]
