"""Event sources from other telephony platforms: Kazoo, Basix and Wazo, each with a simulator.

I/O layer: the clients (on ``websockets``) and simulators (on ``aiohttp``) here depend only on
:mod:`jambonz_lab.protocol` (the pure wire codecs) and on the lab's loop thread. Their rows land
in a lab's event log with ``source`` set to the platform.
"""

from __future__ import annotations

from ._simserver import SimServer
from ._source import EventSource, PlatformEvent, SourceState
from .scenario import CallScenario, Step

__all__ = ["CallScenario", "EventSource", "PlatformEvent", "SimServer", "SourceState", "Step"]
