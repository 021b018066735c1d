"""Event sources from other telephony platforms: Kazoo, Basix and Wazo, each with a simulator.

I/O layer: the clients (on ``websockets``) and simulators (on ``aiohttp``, loopback only) here
depend only on :mod:`jambonz_lab.protocol` (the pure wire codecs) and on the lab's loop thread.
Their rows land in a lab's event log with ``source`` set to the platform.

Example::

    import jambonz_lab as jl
    from jambonz_lab.platforms import CallScenario, KazooSimulator

    lab = jl.start()
    kazoo = KazooSimulator().start()
    lab.kazoo(kazoo.ws_url, auth_token=kazoo.auth_token, account_id=kazoo.account_id,
              bindings=["call.*.*"])
    kazoo.play(CallScenario(seed=1), time_scale=0).result()
    lab.platform_events("kazoo")

=======  ===========================================  =====================================
source   client                                       simulator
=======  ===========================================  =====================================
kazoo    :class:`KazooClient` (blackhole websocket),  :class:`KazooSimulator` (blackhole +
         :class:`WebhookReceiver`, :class:`KazooRest`  crossbar channels), :class:`WebhookSender`
basix    :class:`BasixClient` (ws_cti, BERT frames)   :class:`BasixSimulator`
wazo     :class:`WazoClient` (websocketd),            :class:`WazoSimulator` (websocketd +
         :class:`WazoCalld`                           wazo-auth + calld)
=======  ===========================================  =====================================

Threads: the plain methods are for cells and scripts; sockets live on the lab's loop thread.
"""

from __future__ import annotations

from ._feed import EventFeed, PlatformEvent
from ._simserver import SimServer
from ._source import EventSource, SourceState
from .basix import BasixClient, call_user
from .basix_sim import BasixSimulator
from .kazoo import KazooClient, KazooRest
from .kazoo_sim import KazooSimulator
from .kazoo_webhooks import WebhookReceiver, WebhookSender
from .scenario import CallScenario, Step
from .wazo import WazoCalld, WazoClient
from .wazo_sim import WazoSimulator, WazoUser

__all__ = [
    "BasixClient",
    "BasixSimulator",
    "CallScenario",
    "EventFeed",
    "EventSource",
    "KazooClient",
    "KazooRest",
    "KazooSimulator",
    "PlatformEvent",
    "SimServer",
    "SourceState",
    "Step",
    "WazoCalld",
    "WazoClient",
    "WazoSimulator",
    "WazoUser",
    "WebhookReceiver",
    "WebhookSender",
    "call_user",
]
