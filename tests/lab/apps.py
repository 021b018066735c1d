"""Lab services the tests of ``tests/lab`` share.

Example::

    heard_app(lab)          # "/": gather speech, say what was heard, hang up
    lab.call("/", sim.Caller.saying("hello"))
    rows = recorded_rows(5)  # the rows of 5 such calls, from a lab of their own
"""

from __future__ import annotations

import jambonz_lab as jl
from jambonz_lab import sim
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
