"""jambonz_lab: prototype jambonz call control in Python and JupyterLab.

Layers, data flowing one way: :mod:`jambonz_lab.protocol` (pure, sans I/O)
→ :mod:`jambonz_lab.net` (the aiohttp app server) → :mod:`jambonz_lab.lab`
(runtime, event log, CLI). Threading rule: :mod:`jambonz_lab.loop`.

Example::

    import jambonz_lab as jl

    lab = jl.start()
    svc = lab.service("/")

    @svc.on("session:new")
    def new_call(session):
        session.say(text="Hello").hangup().send()
"""

from __future__ import annotations

import logging

from .exceptions import (
    AlreadyReplied,
    CommandError,
    FrameTooLarge,
    InvalidFrame,
    JambonzLabError,
    KazooError,
    NoPendingHook,
    NoSocket,
    PlatformError,
    ProtocolError,
    QueryError,
    RestError,
    ServerError,
    SessionClosed,
    SignatureError,
    TermDecodeError,
    VerbError,
    WaitTimeout,
    WazoClosed,
)
from .lab import EventLog, Lab, LabState, default_lab, read_log, service, sql, start, stop_all
from .lab.widgets import card, composer, panel, sources  # light: widget libraries load on first call
from .net import ServerOptions, Service, Session, SocketClose
from .protocol import CallState, Message, MessageType
from .waiting import Waiter

__version__ = "0.1.0"

logging.getLogger("jambonz_lab").addHandler(logging.NullHandler())
del annotations, logging  # not part of the API: keep them out of jl.<TAB>

#: the subpackages completion offers next to ``__all__`` (once imported)
_PACKAGES = ("lab", "loop", "net", "platforms", "protocol", "sim")

__all__ = [
    "AlreadyReplied",
    "CallState",
    "SocketClose",
    "CommandError",
    "EventLog",
    "FrameTooLarge",
    "InvalidFrame",
    "JambonzLabError",
    "KazooError",
    "Lab",
    "LabState",
    "Message",
    "MessageType",
    "NoPendingHook",
    "NoSocket",
    "PlatformError",
    "ProtocolError",
    "QueryError",
    "RestError",
    "ServerError",
    "ServerOptions",
    "Service",
    "Session",
    "SessionClosed",
    "SignatureError",
    "TermDecodeError",
    "VerbError",
    "WaitTimeout",
    "Waiter",
    "WazoClosed",
    "__version__",
    "card",
    "composer",
    "default_lab",
    "panel",
    "read_log",
    "service",
    "sql",
    "sources",
    "start",
    "stop_all",
]


def __dir__() -> list[str]:
    """What ``jl.<TAB>`` offers: the public names and the subpackages imported so far."""
    return sorted([*__all__, *(name for name in _PACKAGES if name in globals())])
