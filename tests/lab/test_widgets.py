"""The notebook widgets' state, without a browser: real labs, real simulated calls, real widgets.

The widgets live outside a kernel here (``comm`` hands them a ``DummyComm``), so these tests
check what would be synced — the traits — after the hub's flushes. The DOM itself (classes,
``textContent`` escaping) is checked by the browser tests.
"""

from __future__ import annotations

import html
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
import traitlets

import jambonz_lab as jl
from jambonz_lab import sim
from jambonz_lab.lab.widgets import SessionCard
from jambonz_lab.lab.widgets._hub import PANEL_SIZE
from jambonz_lab.lab.widgets._model import MAX_EVENTS
from tests.fakejambonz import FakeJambonz, wait_until

LOOP = "jambonz-lab-loop"


def echo(lab: jl.Lab, path: str = "/") -> None:
    """Gather; say what was heard and gather again while digits come; hang up on silence."""

    @lab.service(path).on("session:new")
    def new(session: jl.Session) -> None:
        @session.on("/g")
        def heard(msg: jl.Message) -> None:
            if msg.digits or msg.transcript:
                session.say(text=f"heard {msg.transcript or msg.digits}")
                session.gather(input=["speech", "digits"], actionHook="/g", finishOnKey="#").reply()
            else:
                session.hangup().reply()

        session.gather(input=["speech", "digits"], actionHook="/g", finishOnKey="#").send()


def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    wait_until(predicate, timeout)


def custom_click(widget: Any, action: str) -> None:
    """Deliver a button click the way the kernel does: a comm ``custom`` message to the widget."""
    widget._handle_msg(
        {"content": {"data": {"method": "custom", "content": {"action": action}}}, "buffers": []}
    )


# -- the session card -----------------------------------------------------------------------------


def test_card_follows_a_simulated_call_through_the_panel(lab: jl.Lab) -> None:
    echo(lab)
    panel = jl.panel(lab)  # before the call: its row is listed and updated live
    result = lab.call("/", sim.Caller.saying("a blue car"), clock="virtual")
    session = lab.session(result.call_sid)
    card = jl.card(session)
    panel.open_card(result.call_sid)  # what a click on its row does
    until(lambda: panel.cards == [card])  # one card per session, shared
    until(lambda: card.statuses == ["trying", "in-progress", "completed"] and not card.live)
    assert card.status == "completed" and card.state == "closed"
    assert card.call_sid == result.call_sid
    assert (card.from_, card.to, card.direction) == ("+14155550100", "+16175550199", "inbound")
    assert card.verbs == ["gather", "say", "gather", "hangup"]
    assert (card.hooks, card.errors) == (2, 0)
    types = [e["type"] for e in card.events]
    assert types[0] == "session:new" and types[-1] == "close"
    heard = [e for e in card.events if e["type"] == "verb:hook"][0]
    assert heard["hook"] == "/g" and "a blue car" in heard["detail"] and heard["dir"] == "in"
    assert [e["t"] for e in card.events] == sorted(e["t"] for e in card.events)
    assert set(card.events[0]) == {"t", "dir", "type", "hook", "detail"}
    until(lambda: panel.calls == 1 and panel.live == 0)
    assert panel.sessions[0]["status"] == "completed" and panel.sessions[0]["live"] is False


def test_card_made_after_the_call_is_seeded_from_the_log(lab: jl.Lab) -> None:
    echo(lab)
    result = lab.call("/", sim.Caller(inputs=[sim.Digits("42#")]), clock="virtual")
    card = jl.card(lab.session(result.call_sid))
    assert card.statuses == ["trying", "in-progress", "completed"]
    assert card.verbs == ["gather", "say", "gather", "hangup"] and card.hooks == 2
    assert any("digits 42" in e["detail"] for e in card.events)


def test_events_are_bounded_and_counters_cover_the_whole_call(lab: jl.Lab) -> None:
    echo(lab)
    rounds = 15
    result = lab.call("/", sim.Caller(inputs=[sim.Digits(f"{i}#") for i in range(rounds)]), clock="virtual")
    card = jl.card(lab.session(result.call_sid))
    until(lambda: card.status == "completed" and card.events[-1]["type"] == "close")
    assert len(card.events) == MAX_EVENTS
    assert len(lab.session(result.call_sid).events) > MAX_EVENTS  # the full history stays in pandas
    assert card.hooks == rounds + 1  # every digit round, then the silent one
    assert card.verbs.count("gather") == rounds + 1 and card.verbs[-1] == "hangup"
    assert card.errors == 0


def test_caller_name_with_markup_is_stored_verbatim_as_data(lab: jl.Lab) -> None:
    name = "<img src=x onerror=alert(1)>"
    echo(lab)
    panel = jl.panel(lab)
    result = lab.call("/", sim.Caller.saying("hi", name=name), clock="virtual")
    card = jl.card(lab.session(result.call_sid))
    until(lambda: panel.sessions and panel.sessions[0]["caller_name"] == name)
    assert card.caller_name == name
    assert card.get_state()["caller_name"] == name  # what goes to the browser: the string itself
    static = card._repr_mimebundle_()[0]["text/html"]  # the fallback for viewers without widgets
    assert "<img" not in static and html.escape(name) in static
    assert "<img" not in panel._repr_mimebundle_()["text/html"]


# -- buttons -------------------------------------------------------------------------------------


def test_buttons_mute_send_and_hang_up_a_real_call() -> None:
    lab = jl.start(grace=0.3)
    try:
        lab.service("/").on("session:new", lambda s: s.answer().pause(length=60).send())
        results: list[sim.CallResult] = []
        opened = lab.wait_for_session("/", timeout=10)  # before the call: it waits for the *next* one
        caller = threading.Thread(
            target=lambda: results.append(
                lab.call("/", sim.Caller(hangup_after=30), clock="real", timeout=60)
            )
        )
        caller.start()
        session = opened.result()
        card = jl.card(session)
        until(lambda: card.status == "in-progress" and card.live)

        custom_click(card, "mute")
        until(lambda: card.muted)
        until(lambda: any(e["type"] == "mute:status" and e["dir"] == "out" for e in card.events))

        custom_click(card, "send")  # nothing composed yet: said in the card, not raised
        until(lambda: "nothing queued" in card.error)
        session.say(text="queued from a cell")
        custom_click(card, "send")
        until(lambda: card.error == "" and card.verbs[-1] == "say" and card.queued == 0)

        custom_click(card, "hangup")
        caller.join(10)
        assert not caller.is_alive() and results
        assert (results[0].final_status, results[0].termination_by) == ("completed", "jambonz")
        until(lambda: card.status == "completed" and not card.live)
        final = [
            json.loads(r["payload"]) if isinstance(r["payload"], str) else r["payload"]
            for r in lab.log.rows(session.call_sid)
            if r["type"] == "call:status"
        ][-1]
        assert final["data"]["call_termination_by"] == "jambonz"
        assert card.error == ""
    finally:
        lab.stop()


def test_a_failed_action_shows_in_the_card_and_the_log(lab: jl.Lab, caplog: pytest.LogCaptureFixture) -> None:
    echo(lab)
    result = lab.call("/", sim.Caller.saying("bye"), clock="virtual")
    card = jl.card(lab.session(result.call_sid))
    with caplog.at_level("WARNING", logger="jambonz_lab.widgets"):
        card.click("hangup")  # the call is over
        until(lambda: card.error.startswith("hangup:"))
        card.click("dance")
        until(lambda: card.error.startswith("dance: unknown action"))
    assert any("hangup failed" in r.getMessage() for r in caplog.records)


# -- the composer --------------------------------------------------------------------------------


def test_composer_validates_fields_and_raw_json(lab: jl.Lab) -> None:
    echo(lab)
    result = lab.call("/", sim.Caller.saying("x"), clock="virtual")
    comp = jl.composer(lab.session(result.call_sid))
    assert comp.verb.value == "say" and "gather" in comp.verb.options and "sip_decline" in comp.verb.options
    assert "text" in comp.fields and "verb" not in comp.fields

    comp.raw.value = json.dumps({"verb": "say", "txt": "hi"})
    comp.validate_button.click()
    until(lambda: comp.message == "say: unknown property 'txt' (did you mean 'text'?)")
    assert 'class="jl-error"' in comp.feedback.value and html.escape(comp.message) in comp.feedback.value

    comp.raw.value = ""
    comp.fields["text"].value = "hello"
    comp.fields["stream"].value = "maybe"
    comp.validate_button.click()
    until(lambda: comp.message.startswith("say: property 'stream'"))

    comp.fields["stream"].value = "true"
    comp.fields["loop"].value = "2"
    comp.validate_button.click()
    until(lambda: comp.message.startswith("["))
    assert json.loads(comp.message) == [{"verb": "say", "text": "hello", "stream": True, "loop": 2}]

    comp.verb.value = "pause"  # fields follow the verb; required ones are marked
    until(lambda: "length" in comp.fields and comp.fields_box.children == tuple(comp.fields.values()))
    assert comp.fields["length"].description == "length *"
    comp.validate_button.click()
    until(lambda: comp.message.startswith("pause:") and "length" in comp.message)


def test_composer_queue_and_send_reach_the_wire(lab: jl.Lab) -> None:
    lab.service("/w")  # no handler: the lab acks session:new by itself after the grace
    opened = lab.wait_for_session("/w", timeout=5)
    with FakeJambonz(lab.url + "/w", "call-composer") as fj:
        fj.session_new()
        session = opened.result()
        assert fj.recv()["type"] == "ack"  # the automatic first reply
        card = jl.card(session)
        comp = jl.composer(session)

        comp.send_button.click()  # nothing queued
        until(lambda: comp.message == "send: nothing queued: Queue a verb first")

        comp.fields["text"].value = "from the composer"
        comp.queue_button.click()
        until(lambda: len(session.queued) == 1 and comp.message == "queued say")
        until(lambda: card.queued == 1)
        comp.send_button.click()
        frame = fj.recv()
        assert frame["type"] == "command" and frame["command"] == "redirect"
        assert frame["data"] == [{"verb": "say", "text": "from the composer"}]
        until(lambda: comp.message == "sent 1 verb(s)" and card.queued == 0 and card.verbs[-1] == "say")


# -- threads, bounds, display --------------------------------------------------------------------


def test_widget_writes_happen_on_the_loop_thread(lab: jl.Lab) -> None:
    writers: list[tuple[str, str]] = []

    def watch(widget: Any) -> None:
        widget.observe(
            lambda ch: writers.append((threading.current_thread().name, ch["name"])), traitlets.All
        )

    panel = jl.panel(lab)
    watch(panel.header)
    watch(panel.cards_box)
    lab.service("/t")
    opened = lab.wait_for_session("/t", timeout=5)
    with FakeJambonz(lab.url + "/t", "call-threads") as fj:
        fj.session_new(caller_name="Bob")
        session = opened.result()
        card = jl.card(session)
        watch(card)
        comp = jl.composer(session)
        watch(comp.feedback)
        watch(comp.fields_box)
        fj.send("call:status", {"call_sid": "call-threads", "call_status": "in-progress"})
        fj.send("call:status", {"call_sid": "b-leg-1", "call_status": "ringing"})  # a dialled leg's status
        fj.hook("/h", reason="dtmfDetected", digits="7")
        until(lambda: card.status == "in-progress" and card.hooks == 1)
        assert card.statuses == ["in-progress"]  # only this leg's statuses make the card's status
        assert any(e["detail"] == "leg b-leg-1: ringing" for e in card.events)
        assert card.caller_name == "Bob"
        custom_click(card, "mute")
        comp.verb.value = "hangup"
        comp.validate_button.click()
        until(lambda: card.muted and comp.message.startswith("["))
        fj.send("call:status", {"call_sid": "call-threads", "call_status": "completed"})
        until(lambda: card.status == "completed" and panel.live == 1)
    names = {name for _thread, name in writers}
    assert {"status", "hooks", "muted", "calls", "sessions", "children", "value"} <= names
    assert {thread for thread, _name in writers} == {LOOP}


def test_panel_lists_the_newest_calls_and_opens_one_card_on_demand(lab: jl.Lab) -> None:
    """The panel stays small (issue 18 item 2): a bounded list of the newest calls, no card until
    a row is opened, one card at a time; a card nobody pinned is closed when another one opens."""
    echo(lab)

    @lab.service("/boom").on("session:new")
    def boom(session: jl.Session) -> None:
        raise RuntimeError("handler bug")

    panel = jl.panel(lab)
    assert panel.url == lab.url and panel.header.running and panel.header.max_rows == PANEL_SIZE
    assert panel.services == [
        {"path": "/", "url": lab.url + "/"},
        {"path": "/boom", "url": lab.url + "/boom"},
    ]
    first = lab.call("/", sim.Caller.saying("one"), clock="virtual")
    until(lambda: panel.sessions and panel.sessions[0]["call_sid"] == first.call_sid)
    assert panel.cards == [] and panel.opened == ""  # the list only: no card until asked
    panel.open_card(first.call_sid)
    until(lambda: panel.cards and panel.cards[0].call_sid == first.call_sid)
    first_card = panel.cards[0]
    assert panel.opened == first.call_sid and panel.header.opened == first.call_sid
    lab.call("/boom", sim.Caller(hangup_after=1), clock="virtual")
    results = sim.load(lab.url + "/", calls=PANEL_SIZE, concurrency=PANEL_SIZE, progress=False)
    until(lambda: panel.calls == PANEL_SIZE + 2 and panel.live == 0 and panel.errors == 1)
    until(lambda: len(panel.sessions) == PANEL_SIZE)
    until(lambda: all(s["status"] == "completed" for s in panel.sessions))
    assert {s["call_sid"] for s in panel.sessions} == {r.call_sid for r in results}  # the newest 20
    assert panel.cards == [first_card] and not first_card.closed  # the open card stays open
    newest = panel.sessions[0]
    assert newest["clock"] == "call" and newest["duration"] > 0  # seconds on the call's own clock
    assert newest["last"].startswith("close")
    panel.open_card(newest["call_sid"])  # another row: it replaces the open card
    until(lambda: [c.call_sid for c in panel.cards] == [newest["call_sid"]])
    until(lambda: first_card.closed)  # nobody pinned it: closed, bounded widgets
    panel.open_card(None)  # the close button
    until(lambda: panel.cards == [] and panel.header.opened == "")
    # a call out of the list's window: its card is built from the log
    custom_click_panel(panel, {"action": "open", "call_sid": first.call_sid})
    until(lambda: [c.call_sid for c in panel.cards] == [first.call_sid])
    assert panel.cards[0].status == "completed" and panel.cards[0].verbs[0] == "gather"
    custom_click_panel(panel, {"action": "close"})
    until(lambda: panel.cards == [])
    panel.open_card("no-such-call")  # a one-line warning, nothing opened
    custom_click_panel(panel, {"action": "<b>"})
    until(lambda: panel.header.opened == "" and panel.cards == [])
    assert jl.panel(lab) is panel


def custom_click_panel(panel: Any, content: dict[str, Any]) -> None:
    """A message from the panel's front end (a row click, the close button), as the kernel delivers it."""
    panel.header._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


def test_panel_rows_carry_duration_and_the_last_event() -> None:
    """A list row: the duration on the call clock when rows have call_t, wall time otherwise."""
    from jambonz_lab.lab.widgets._model import CallModel
    from jambonz_lab.records import Row, make_row

    def row(ts: float, kind: str, call_t: float | None, note: str = "") -> Row:
        return make_row("jambonz", "lab", kind, call_sid="c", note=note, ts=ts, call_t=call_t)

    on_call = CallModel("c")
    on_call.apply(row(100.0, "open", 0.0, "first"))
    on_call.apply(row(100.001, "close", 7.25, "socket closed"))
    line = on_call.summary()
    assert (line["clock"], line["duration"], line["last"]) == ("call", 7.25, "close socket closed")
    on_wall = CallModel("c")
    on_wall.apply(row(100.0, "open", None))
    on_wall.apply(row(102.5, "close", None))
    assert (on_wall.summary()["clock"], on_wall.summary()["duration"]) == ("wall", 2.5)
    assert CallModel("c").summary()["duration"] == 0.0 and CallModel("c").summary()["last"] == ""


def test_a_pinned_card_outlives_the_panel_window(lab: jl.Lab) -> None:
    echo(lab)
    jl.panel(lab)
    first = lab.call("/", sim.Caller.saying("keep me"), clock="virtual")
    pinned = jl.card(lab.session(first.call_sid))
    sim.load(lab.url + "/", calls=PANEL_SIZE + 1, concurrency=PANEL_SIZE, progress=False)
    until(lambda: jl.panel(lab).calls == PANEL_SIZE + 2)
    assert not pinned.closed and pinned.status == "completed"
    assert jl.card(lab.session(first.call_sid)) is pinned


def test_ipython_shows_a_session_as_its_card_and_a_lab_as_its_panel(lab: jl.Lab) -> None:
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    try:
        assert jl.lab.widgets.register_display(shell)
        echo(lab)
        result = lab.call("/", sim.Caller.saying("x"), clock="virtual")
        session = lab.session(result.call_sid)
        formatter = shell.display_formatter
        assert formatter is not None
        data, _meta = formatter.format(session)
        view = "application/vnd.jupyter.widget-view+json"
        assert data[view]["model_id"] == jl.card(session).model_id
        data, _meta = formatter.format(lab)
        assert data[view]["model_id"] == jl.panel(lab).model_id
        assert data["text/plain"] == repr(lab)
    finally:
        InteractiveShell.clear_instance()


def test_importing_jambonz_lab_loads_no_widget_library() -> None:
    code = (
        "import sys, jambonz_lab\n"
        "print(sorted(m for m in ('ipywidgets', 'anywidget', 'traitlets', 'IPython') if m in sys.modules))\n"
        "print(callable(jambonz_lab.card), callable(jambonz_lab.panel), callable(jambonz_lab.composer))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True True True"]


def test_card_class_is_an_anywidget_with_its_module_and_css() -> None:
    import anywidget

    assert issubclass(SessionCard, anywidget.AnyWidget)
    esm = str(SessionCard._esm)
    assert "jl-card" in esm and "data-call-sid" in esm and "textContent" in esm
    assert "innerHTML" not in esm  # caller-controlled strings are never parsed as markup
    assert ".jl-status" in str(SessionCard._css)


@pytest.mark.parametrize("name", ["card", "panel", "sources"])
def test_widget_modules_are_files_anywidget_can_hot_reload(name: str) -> None:
    """Each widget's _esm and _css is its own file (anywidget watches it with ANYWIDGET_HMR=1), and
    the helpers they share travel as the `_common` trait, which the module imports in initialize."""
    import anywidget
    from anywidget._file_contents import FileContents

    from jambonz_lab.lab.widgets import _assets, _panel, _sources

    classes: dict[str, type[anywidget.AnyWidget]] = {
        "card": SessionCard,
        "panel": _panel.PanelHeader,
        "sources": _sources.SourcesPanel,
    }
    cls = classes[name]
    for attr, suffix in (("_esm", ".js"), ("_css", ".css")):
        contents = getattr(cls, attr)
        assert isinstance(contents, FileContents)
        assert str(contents) == _assets.asset(name + suffix).read_text(encoding="utf-8")
    esm = str(cls._esm)
    assert "export default { initialize, render }" in esm and 'model.get("_common")' in esm
    common = cls.class_traits()["_common"].default_value
    assert "export function make(" in common and "export function redrawOn(" in common


# -- after the fact (issue 18 item 1) -----------------------------------------------------------


def test_widgets_say_so_when_the_lab_stops() -> None:
    """After ``lab.stop()`` the panel says stopped, the card is not live, and the sources widget shows
    the webhook receiver closed and its platform call no longer watched (before: "listening",
    "receiving" and a live call forever)."""
    from tests.fakejambonz import http

    lab = jl.start(grace=0.3)
    try:
        lab.service("/").on("session:new", lambda s: s.answer().pause(length=60).send())
        receiver = lab.kazoo_webhooks("/hooks")
        panel = jl.panel(lab)
        sources = jl.sources(lab)
        opened = lab.wait_for_session("/", timeout=10)
        with FakeJambonz(lab.url + "/", "call-stop") as fj:
            fj.session_new()
            card = jl.card(opened.result())
            query = "hook_event=channel_create&call_id=k-1&caller_id_number=%2B15550100"
            assert http("GET", receiver.url + "?" + query)[0] == 200
            until(lambda: card.live and sources.live == 1 and panel.header.running)
            assert sources.connections[0]["state"] == "receiving"
            lab.stop()
            until(lambda: not panel.header.running)
            until(lambda: not card.live and panel.live == 0)
            until(lambda: sources.live == 0)
            assert [c["state"] for c in sources.connections] == ["closed"]
            assert sources.connections[0]["note"] == "the lab stopped"
            assert sources.calls[0]["live"] is False and sources.calls[0]["status"].endswith("(not watched)")
    finally:
        lab.stop()
    again = jl.panel(lab)  # shown after the stop: built stopped
    assert again is panel and not again.header.running


def test_a_lab_without_platforms_shows_no_sources_widget_after_it_stops() -> None:
    """Notebook 01 ends with ``lab.stop()``: its panel keeps the list (and the open card) and does
    not gain an empty "platform sources" widget (before: the stop's note added one)."""
    lab = jl.start(replace=False)
    try:
        lab.service("/").on("session:new", lambda s: s.hangup().send())
        panel = jl.panel(lab)
        result = lab.call("/", sim.Caller(), clock="virtual")
        panel.open_card(result.call_sid)
        until(lambda: [c.call_sid for c in panel.cards] == [result.call_sid])
    finally:
        lab.stop()
    until(lambda: not panel.header.running)
    until(lambda: panel.sessions and panel.sessions[0]["live"] is False)
    assert panel.sources is None and panel.children == (panel.header, panel.cards_box)
    assert [c.call_sid for c in panel.cards] == [result.call_sid]


def test_starting_again_stops_the_previous_default_lab(caplog: pytest.LogCaptureFixture) -> None:
    """Re-running ``lab = jl.start()`` (port 0: a new port each time) leaves one lab listening and says
    which one it stopped; ``replace=False`` keeps both and the new lab's repr names the other."""
    first = jl.start()
    first.service("/a")
    with caplog.at_level("WARNING", logger="jambonz_lab.lab"):
        second = jl.start()
    try:
        assert not first.running and second.running and second.port != first.port
        assert repr(second).endswith(f"; replaced {first.url} (stopped)>")
        assert any(
            f"stopped the previous lab {first.url} (1 service(s), 0 call(s))" in r.getMessage()
            for r in caplog.records
        )
        third = jl.start(replace=False)
        try:
            assert second.running and third.running
            assert repr(third).endswith(f"; also running: {second.url}>")  # nothing replaced
            fourth = jl.start()  # a lab started with replace=False is not replaced either
            try:
                assert third.running and fourth.running
            finally:
                fourth.stop()
        finally:
            third.stop()
        assert "also running" not in repr(second)
    finally:
        second.stop()


def test_composer_queue_refuses_an_ended_call(lab: jl.Lab) -> None:
    echo(lab)
    result = lab.call("/", sim.Caller.saying("bye"), clock="virtual")
    session = lab.session(result.call_sid)
    until(lambda: session.closed)
    comp = jl.composer(session)
    comp.fields["text"].value = "too late"
    comp.queue_button.click()
    ended = f"call {result.call_sid} has ended; nothing more can be sent on it"
    until(lambda: comp.message == f"queue: {ended}")
    assert session.queued == [] and comp.queued.value == "0 queued"
    comp.send_button.click()
    until(lambda: comp.message == f"send: {ended}")


def test_a_call_whose_socket_closed_before_a_final_status_is_listed_as_closed(lab: jl.Lab) -> None:
    """Issue 18 item 1, seen in the README walk: a replayed call ends its socket after the
    recording's last frame, with no final call:status; its row said "in-progress" for ever."""
    lab.service("/").on("session:new", lambda s: s.say(text="hi").send())
    panel = jl.panel(lab)
    with FakeJambonz(lab.url + "/", call_sid="closed-early") as fj:
        fj.session_new(call_status="in-progress")
        fj.recv()
        until(lambda: panel.sessions and panel.sessions[0]["status"] == "in-progress")
        assert panel.sessions[0]["live"] is True
    until(lambda: panel.sessions[0]["status"] == "closed")
    assert panel.sessions[0]["live"] is False
