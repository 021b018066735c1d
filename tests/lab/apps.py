"""Lab services the tests of ``tests/lab`` share.

Example::

    heard_app(lab)          # "/": gather speech, say what was heard, hang up
    lab.call("/", sim.Caller.saying("hello"))
"""

from __future__ import annotations

import jambonz_lab as jl


def heard_app(lab: jl.Lab) -> None:
    """The service at ``/``: a speech gather whose hook ``/g`` says what it heard and hangs up."""

    @lab.service("/").on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/g")
        def heard(msg: jl.Message) -> None:
            session.say(text=f"heard {msg.transcript}").hangup().reply()

        session.gather(input=["speech"], actionHook="/g").send()
