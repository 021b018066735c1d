"""Lab services the tests of ``tests/lab`` share.

Example::

    heard_app(lab)          # "/": gather speech, say what was heard, hang up
    lab.call("/", sim.Caller.saying("hello"))
    rows = recorded_rows(5)  # the rows of 5 such calls, from a lab of their own
    with three_platforms_played(lab) as (kazoo, basix, wazo): ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.platforms import BasixSimulator, CallScenario, WazoSimulator
from jambonz_lab.platforms.basix import BasixClient
from jambonz_lab.platforms.kazoo import KazooClient
from jambonz_lab.platforms.kazoo_sim import KazooSimulator
from jambonz_lab.platforms.wazo import WazoClient
from jambonz_lab.records import Row


def heard_app(lab: jl.Lab) -> None:
    """The service at ``/``: a speech gather whose hook ``/g`` says what it heard and hangs up."""

    @lab.service("/").on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/g")
        def heard(msg: jl.Message) -> None:
            session.say(text=f"heard {msg.transcript}").hangup().reply()

        session.gather(input=["speech"], actionHook="/g").send()


def recorded_rows(calls: int) -> list[Row]:
    """The event-log rows of ``calls`` calls to :func:`heard_app`, made by a lab started and
    stopped for them."""
    lab = jl.start(grace=0.3)
    try:
        heard_app(lab)
        for n in range(calls):
            lab.call("/", sim.Caller.saying(f"w{n}"))
        return lab.log.select(None)
    finally:
        lab.stop()


@contextmanager
def three_platforms_played(lab: jl.Lab) -> Iterator[tuple[KazooClient, BasixClient, WazoClient]]:
    """``lab`` watching a Kazoo, a Basix and a Wazo simulator that each played the same three calls
    (the third unanswered), every call's end seen; the simulators run until the block ends."""
    with KazooSimulator() as kazoo, BasixSimulator() as basix, WazoSimulator() as wazo:
        kz = lab.kazoo(
            kazoo.ws_url, auth_token=kazoo.auth_token, account_id=kazoo.account_id, bindings=["call.*.*"]
        )
        cti = lab.basix(basix.ws_url, app_name="lab", domain="example", token="secret", full_events=True)
        wz = lab.wazo(wazo.http_url, username="admin", password="admin-pw")
        calls = [CallScenario(seed=n, ring=1, talk=2, answered=n != 2) for n in range(3)]
        ends = [
            kz.wait_for(lambda e: e.type == "CHANNEL_DESTROY" and e.data.get("hangup_cause") == "NO_ANSWER"),
            cti.wait_for("channel.removed", count=6),
            wz.wait_for("call_ended", count=6),
        ]
        for platform in (kazoo, basix, wazo):
            platform.play(calls, time_scale=0).result()
        for end in ends:
            end.result(timeout=10)
        yield kz, cti, wz
