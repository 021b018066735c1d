"""The jambonz WebSocket protocol, sans I/O: dicts in, events and frames out.

Nothing here imports asyncio or opens a socket (see :mod:`.call`).
"""

from __future__ import annotations

from . import commands
from ._verb_methods import VerbMethods
from .call import AckedBy, CallProtocol, CallState, Outgoing, Pending
from .messages import MAX_APP_FRAME, SUBPROTOCOL, Message, MessageType, encode, parse
from .tts import TtsQueue, TtsState
from .verbs import build_verb, normalize_verb, normalize_verbs

__all__ = [
    "MAX_APP_FRAME",
    "SUBPROTOCOL",
    "AckedBy",
    "CallProtocol",
    "CallState",
    "Message",
    "MessageType",
    "Outgoing",
    "Pending",
    "TtsQueue",
    "TtsState",
    "VerbMethods",
    "build_verb",
    "commands",
    "encode",
    "normalize_verb",
    "normalize_verbs",
    "parse",
]
