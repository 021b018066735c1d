"""Wire protocols, sans I/O: dicts (or bytes) in, events and frames out.

The jambonz WebSocket protocol (:mod:`.messages`, :mod:`.call`, :mod:`.verbs`, :mod:`.commands`,
:mod:`.tts`) and the other platforms' wire codecs, used by :mod:`jambonz_lab.platforms`:
:mod:`.kazoo` (blackhole frames and pipeline), :mod:`.kazoo_webhooks` (hook payloads and Kazoo's
form flattening), :mod:`.etf` (Erlang external term format), :mod:`.basix` (CTI messages and
element tables) and :mod:`.wazo` (websocketd's op state machine). Nothing here imports asyncio or
opens a socket (see :mod:`.call`).
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
