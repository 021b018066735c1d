"""An embedded jambonz: a simulated feature server that calls your app.

It plays jambonz against any jambonz WebSocket app — ours, or a Node app built
with ``@jambonz/node-client-ws`` — following the feature server's rules
(protocol doc §1–§6): subprotocol, 5 s acks, the verb stack, hooks and their
payloads, commands, reconnects.

Example::

    from jambonz_lab import sim

    result = sim.call(lab.url + "/echo", caller=sim.Caller.saying("hello", "goodbye"))
    result.said, result.final_status, result.to_dataframe()
"""

from __future__ import annotations

from .api import LoadResults, acall, call, load
from .caller import (
    Audio,
    Caller,
    DialOutcome,
    Digits,
    Greeting,
    Hold,
    Press,
    Refer,
    Silence,
    Speech,
    Tone,
    ToolCall,
)
from .clock import Clock
from .engine import SimCall, SimOptions
from .replay import Divergence, ReplayReport, areplay, replay
from .rest import RestServer, serve_rest
from .result import CallResult, TraceEntry

del annotations  # not part of the API: keep it out of sim.<TAB>

__all__ = [
    "Audio",
    "Tone",
    "CallResult",
    "Caller",
    "Clock",
    "DialOutcome",
    "Digits",
    "Divergence",
    "Greeting",
    "Hold",
    "LoadResults",
    "Press",
    "Refer",
    "ReplayReport",
    "RestServer",
    "SimCall",
    "SimOptions",
    "Silence",
    "Speech",
    "ToolCall",
    "TraceEntry",
    "acall",
    "areplay",
    "call",
    "load",
    "replay",
    "serve_rest",
]


def __dir__() -> list[str]:
    """What ``sim.<TAB>`` offers: the public names (the submodules stay importable)."""
    return sorted(__all__)
