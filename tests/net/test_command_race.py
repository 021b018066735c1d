"""A command right after the opening ack must not be lost on a real jambonz.

jambonz handles every frame of one socket read before the call's session exists
(see ``readfake``), so a ``redirect`` that arrives in the same read as the
``session:new`` ack is dropped. The first two classes check that ``ReadFake``
really drops such a command (against a tiny sans-I/O server, not jambonz_lab);
the last one holds jambonz_lab to it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

import jambonz_lab as jl
from tests.fakejambonz import wait_until
from tests.readfake import Message, ReadFake

REDIRECT = {"type": "command", "command": "redirect", "queueCommand": False, "data": [{"verb": "hangup"}]}


class TinyApp:
    """A one-connection websocket app (sans-I/O, blocking socket) that answers session:new
    with an ack and a redirect: in the very same write (``gap=None``), or ``gap`` s later."""

    def __init__(self, gap: float | None) -> None:
        self.gap = gap
        self.received: list[Message] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"ws://127.0.0.1:{self._listener.getsockname()[1]}/app"
        self._thread = threading.Thread(target=self._serve, name="tinyapp", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self._listener.accept()
        proto = ServerProtocol(subprotocols=[Subprotocol("ws.jambonz.org")])

        def flush() -> None:
            data = b"".join(proto.data_to_send())  # everything queued: one write
            if data:
                conn.sendall(data)

        with conn:
            while chunk := conn.recv(65536):
                proto.receive_data(chunk)
                for event in proto.events_received():
                    if isinstance(event, Request):
                        proto.send_response(proto.accept(event))
                    elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                        msg = json.loads(bytes(event.data))
                        self.received.append(msg)
                        if msg["type"] == "session:new":
                            ack = {"type": "ack", "msgid": msg["msgid"], "data": [{"verb": "answer"}]}
                            proto.send_text(json.dumps(ack).encode())
                            if self.gap is not None:
                                flush()
                                time.sleep(self.gap)
                            proto.send_text(json.dumps(REDIRECT).encode())
                flush()
                if proto.close_expected():
                    break

    def close(self) -> None:
        self._listener.close()
        self._thread.join(2)


@pytest.fixture
def tiny() -> Iterator[Callable[[float | None], TinyApp]]:
    apps: list[TinyApp] = []

    def make(gap: float | None) -> TinyApp:
        apps.append(TinyApp(gap))
        return apps[-1]

    yield make
    for app in apps:
        app.close()


class TestReadFakeDrops:
    @pytest.mark.parametrize("delay", [0.0, 0.05])
    def test_a_command_in_the_acks_write_is_dropped(
        self, tiny: Callable[[float | None], TinyApp], delay: float
    ) -> None:
        app = tiny(None)
        with ReadFake(app.url, delay_first_read=delay) as fake:
            assert fake.subprotocol == "ws.jambonz.org"
            msgid = fake.session_new()
            assert fake.wait_created()["msgid"] == msgid
            assert fake.wait_commands(1) == []
            assert fake.dropped == [REDIRECT]
            assert fake.ack_read == 0
            assert fake.frames_per_read[0] == 2
            wait_until(lambda: len(app.received) == 2)  # the trying status
        assert [m["type"] for m in app.received] == ["session:new", "call:status"]
        assert app.received[1]["data"]["call_status"] == "trying"

    def test_separate_writes_are_one_read_with_delay_first_read(
        self, tiny: Callable[[float | None], TinyApp]
    ) -> None:
        app = tiny(0.0)
        with ReadFake(app.url, delay_first_read=0.05) as fake:
            fake.session_new()
            fake.wait_commands(1)
            assert fake.dropped == [REDIRECT]
            assert fake.frames_per_read[0] == 2

    def test_a_command_200_ms_later_is_handled(self, tiny: Callable[[float | None], TinyApp]) -> None:
        app = tiny(0.2)
        with ReadFake(app.url, delay_first_read=0.05) as fake:
            fake.session_new()
            assert fake.wait_commands(1) == [REDIRECT]
            assert fake.dropped == []
            assert fake.frames_per_read == [1, 1]
            assert fake.ack_read == 0

    def test_send_trying_false_sends_nothing_after_the_ack(
        self, tiny: Callable[[float | None], TinyApp]
    ) -> None:
        app = tiny(0.2)
        with ReadFake(app.url, send_trying=False) as fake:
            fake.session_new()
            fake.wait_commands(1)
        assert [m["type"] for m in app.received] == ["session:new"]


# -- jambonz_lab ----------------------------------------------------------------------------

CALLS = 30
AT_ONCE = 5


def run_calls(
    lab: jl.Lab, path: str, *, delay: float, send_trying: bool = True, calls: int = CALLS
) -> list[ReadFake]:
    """Place ``calls`` calls, ``AT_ONCE`` at a time; each waits for its ack and one command."""
    done: list[ReadFake] = []
    for batch in range(0, calls, AT_ONCE):
        fakes = [
            ReadFake(lab.url + path, f"race-{i}", delay_first_read=delay, send_trying=send_trying)
            for i in range(batch, min(batch + AT_ONCE, calls))
        ]
        try:
            for fake in fakes:
                fake.session_new()
            for fake in fakes:
                fake.wait_created()
                fake.wait_commands(1, timeout=3.0)
        finally:
            for fake in fakes:
                fake.close()
        done.extend(fakes)
    return done


def check(fakes: list[ReadFake]) -> None:
    lost = [f for f in fakes if f.dropped]
    assert not lost, (
        f"{len(lost)}/{len(fakes)} calls dropped the redirect (it came in the ack's read; "
        f"frames per read of the first: {lost[0].frames_per_read})"
    )
    for fake in fakes:
        assert fake.session_msgid is not None
        assert fake.acks[fake.session_msgid]["data"] == [{"verb": "say", "text": "one"}]
        assert fake.commands == [
            {
                "type": "command",
                "command": "redirect",
                "queueCommand": False,
                "data": [{"verb": "say", "text": "two"}],
            }
        ]
        assert fake.ack_read is not None
        (command_read,) = [i for i, r in enumerate(fake.reads) if any(m["type"] == "command" for m in r)]
        assert command_read > fake.ack_read


class TestLabKeepsTheCommand:
    @pytest.mark.parametrize("delay", [0.05, 0.0], ids=["one-read", "no-delay"])
    def test_a_second_send_in_the_handler_is_not_lost(self, lab: jl.Lab, delay: float) -> None:
        @lab.service("/race").on("session:new")
        def new(session: jl.Session) -> None:
            session.say(text="one").send()
            session.say(text="two").send()

        check(run_calls(lab, "/race", delay=delay))

    def test_a_second_send_in_a_coroutine_handler_is_not_lost(self, lab: jl.Lab) -> None:
        @lab.service("/race").on("session:new")
        async def new(session: jl.Session) -> None:
            session.say(text="one").send()
            session.say(text="two").send()

        check(run_calls(lab, "/race", delay=0.05))

    def test_without_a_trying_status_the_command_still_comes(self, lab: jl.Lab) -> None:
        """Sessions that send no call:status after the ack (outbound-like) still get it, later."""

        @lab.service("/race").on("session:new")
        def new(session: jl.Session) -> None:
            session.say(text="one").send()
            session.say(text="two").send()

        check(run_calls(lab, "/race", delay=0.05, send_trying=False, calls=AT_ONCE))

    def test_two_sends_from_a_cell_right_after_the_session_came(self, lab: jl.Lab) -> None:
        """A notebook's "run all": the session from wait_for_session, then two sends at once."""
        lab.service("/race")
        fakes: list[ReadFake] = []
        try:
            for i in range(10):
                waiter = lab.wait_for_session("/race", timeout=3)
                fake = ReadFake(lab.url + "/race", f"cell-{i}", delay_first_read=0.05)
                fakes.append(fake)
                fake.session_new()
                session = waiter.result()
                session.say(text="one").send()
                session.say(text="two").send()
                fake.wait_created()
                fake.wait_commands(1)
                fake.close()
        finally:
            for fake in fakes:
                fake.close()
        check(fakes)
