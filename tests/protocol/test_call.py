"""Tests for jambonz_lab.protocol.call: the CallProtocol state machine (protocol doc §1.5, §1.6, §3)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jambonz_lab.exceptions import (
    AlreadyReplied,
    FrameTooLarge,
    NoPendingHook,
    NoSocket,
    ProtocolError,
    SessionClosed,
)
from jambonz_lab.protocol.call import AckedBy, CallProtocol, CallState, Outgoing, Pending
from jambonz_lab.protocol.messages import Message, MessageType, encode, parse

SAY = {"verb": "say", "text": "hi"}
PLAY = {"verb": "play", "url": "https://example.com/a.mp3"}
HANGUP = {"verb": "hangup"}
BIG = [{"verb": "say", "text": "x" * 30000}]
MUTE = {"mute_status": "mute"}


def msg(
    mtype: str, msgid: str, *, call_sid: str | None = "c1", hook: str | None = None, **data: Any
) -> Message:
    """Build a Message the way the I/O layer does: parse(json.dumps(...))."""
    fields: dict[str, Any] = {"type": mtype, "msgid": msgid, "data": data}
    if call_sid is not None:
        fields["call_sid"] = call_sid
    if hook is not None:
        fields["hook"] = hook
    return parse(json.dumps(fields))


def wire(out: list[Outgoing]) -> list[dict[str, Any]]:
    """The JSON objects of a list of frames."""
    return [o.message for o in out]


def opening(mtype: str = "session:new", msgid: str = "s1") -> CallProtocol:
    """A call opened by ``mtype`` with no frames written yet."""
    call, out = CallProtocol.open(msg(mtype, msgid))
    assert out == []
    return call


def active() -> CallProtocol:
    """A call whose session:new (s1) was acked with SAY, and jambonz's next frame arrived."""
    call = opening()
    call.send([SAY])
    assert call.state is CallState.STARTING
    assert call.receive(msg("call:status", "st1", call_status="trying")) == []
    assert call.state is CallState.ACTIVE
    return call


def with_hooks(*msgids: str) -> CallProtocol:
    """An active call with verb:hook /echo messages waiting for acks."""
    call = active()
    for m in msgids:
        call.receive(msg("verb:hook", m, hook="/echo"))
    return call


def redirect(verbs: list[dict[str, Any]], queue: bool = False) -> dict[str, Any]:
    return {"type": "command", "command": "redirect", "queueCommand": queue, "data": verbs}


# -- opening ----------------------------------------------------------------------------


def test_open_session_new() -> None:
    """session:new opens the call in OPENING with its ack owed."""
    call = opening()
    assert call.state is CallState.OPENING
    assert call.call_sid == "c1"
    assert call.opening_ack_owed is True
    assert call.initial_msgid == "s1"
    assert call.pending() == [Pending("s1", MessageType.SESSION_NEW, None)]


@pytest.mark.parametrize(
    "mtype", ["verb:hook", "dial:confirm", "call:status", "verb:status", "jambonz:error", "tts:tokens-result"]
)
def test_non_openers_cannot_open(mtype: str) -> None:
    """Only session:* messages may open a call."""
    with pytest.raises(ProtocolError) as info:
        CallProtocol.open(msg(mtype, "x1"))
    assert str(info.value) == f"{mtype} cannot open a session"
    assert info.value.msgid == "x1"


def test_adulting_is_acked_at_once() -> None:
    """open() acks session:adulting automatically with no data."""
    call, out = CallProtocol.open(msg("session:adulting", "a1", call_sid=None))
    assert wire(out) == [{"type": "ack", "msgid": "a1"}]
    assert out[0].auto is True and out[0].acks == "a1"
    assert call.state is CallState.STARTING  # commands wait until jambonz shows it listens
    assert call.opening_ack_owed is False
    assert call.acked_by("a1") is AckedBy.AUTO


def test_adulting_call_sid_from_data() -> None:
    """The adulting socket has no top call_sid; the call's sid is data.call_sid."""
    call, _ = CallProtocol.open(
        parse(json.dumps({"type": "session:adulting", "msgid": "a1", "data": {"call_sid": "b"}}))
    )
    assert call.call_sid == "b"


def test_adulting_then_send_is_a_redirect() -> None:
    """After the automatic adulting ack, send() becomes a redirect command."""
    call, _ = CallProtocol.open(msg("session:adulting", "a1"))
    assert call.send([SAY]) == []  # held: jambonz may not listen for commands yet
    assert wire(call.settle()) == [redirect([SAY])]


def test_redirect_opener_acked_by_send() -> None:
    """A session:redirect opener is acked by the first send()."""
    call = opening("session:redirect", "r1")
    assert wire(call.send([SAY])) == [{"type": "ack", "msgid": "r1", "data": [SAY]}]
    assert call.state is CallState.STARTING


def test_redirect_opener_accepts_empty_ack() -> None:
    """Unlike session:new, session:redirect may be acked with no verbs."""
    call = opening("session:redirect", "r1")
    assert wire(call.reply("r1", [])) == [{"type": "ack", "msgid": "r1"}]
    assert call.state is CallState.STARTING


# -- send -------------------------------------------------------------------------------


def test_first_send_acks_session_new() -> None:
    """The first send() is the session:new ack carrying the verbs."""
    call = opening()
    out = call.send([SAY, PLAY])
    assert wire(out) == [{"type": "ack", "msgid": "s1", "data": [SAY, PLAY]}]
    assert (out[0].acks, out[0].auto, out[0].verbs, out[0].kind) == ("s1", False, 2, "ack")
    assert out[0].text == encode(out[0].message)
    assert call.state is CallState.STARTING
    assert call.acked_by("s1") is AckedBy.APP
    assert call.pending() == []


def test_later_send_is_redirect_command() -> None:
    """A later send() is a redirect command with queueCommand false."""
    out = active().send([PLAY])
    assert wire(out) == [redirect([PLAY])]
    assert (
        out[0].text
        == '{"type":"command","command":"redirect","queueCommand":false,"data":'
        + json.dumps([PLAY], separators=(",", ":"))
        + "}"
    )
    assert (out[0].acks, out[0].kind, out[0].verbs) == (None, "redirect", 1)


def test_later_send_queued() -> None:
    """exec_immediate=False sends queueCommand true."""
    assert wire(active().send([PLAY, HANGUP], exec_immediate=False)) == [redirect([PLAY, HANGUP], queue=True)]


def test_send_nothing_before_ack() -> None:
    """send([]) before the opening ack writes nothing and the ack stays owed."""
    call = opening()
    assert call.send([]) == []
    assert call.opening_ack_owed is True


def test_send_nothing_after_ack() -> None:
    """send([]) after the opening ack writes nothing (no data-less redirect)."""
    assert active().send([]) == []


def test_send_accepts_tuple() -> None:
    """Any sequence of verbs works and is sent as a list."""
    assert wire(active().send((SAY,))) == [redirect([SAY])]


# -- reply ------------------------------------------------------------------------------


def test_empty_reply_to_session_new_raises() -> None:
    """An empty ack for session:new is refused (jambonz would reject with 480)."""
    call = opening()
    with pytest.raises(ProtocolError) as info:
        call.reply("s1", [])
    assert (
        str(info.value)
        == "session:new must be acked with at least one verb (jambonz rejects the call with 480)"
    )
    assert info.value.msgid == "s1"
    assert call.opening_ack_owed is True


def test_reply_none_to_session_new_with_verbs() -> None:
    """reply(None, verbs) acks the opening message like send()."""
    call = opening()
    assert wire(call.reply(None, [SAY])) == [{"type": "ack", "msgid": "s1", "data": [SAY]}]
    assert call.state is CallState.STARTING


def test_two_hooks_each_acked_with_own_msgid() -> None:
    """Concurrent hooks are acked independently, each with its msgid."""
    call = with_hooks("h1", "h2")
    assert wire(call.reply("h1", [SAY])) == [{"type": "ack", "msgid": "h1", "data": [SAY]}]
    assert wire(call.reply("h2", [])) == [{"type": "ack", "msgid": "h2"}]
    assert call.pending() == []


def test_pending_lists_hooks_oldest_first() -> None:
    """pending() lists waiting hooks oldest first with their hook."""
    call = with_hooks("h1", "h2")
    assert call.pending() == [
        Pending("h1", MessageType.VERB_HOOK, "/echo"),
        Pending("h2", MessageType.VERB_HOOK, "/echo"),
    ]
    assert call.is_pending("h2") and not call.is_pending("s1")


def test_reply_none_picks_newest() -> None:
    """reply(None) acks the newest waiting msgid, then the next newest."""
    call = with_hooks("h1", "h2")
    assert call.reply(None, [])[0].acks == "h2"
    assert call.reply(None, [])[0].acks == "h1"


def test_reply_none_with_nothing_ever_pending() -> None:
    """reply(None) with nothing waiting or answered (dropped before the opening ack) raises NoPendingHook."""
    call = opening()
    call.connection_lost(1006)
    with pytest.raises(NoPendingHook) as info:
        call.reply(None, [SAY])
    assert str(info.value) == "no hook of call c1 waits for a reply; use send() to push verbs"


def test_reply_none_after_all_answered() -> None:
    """reply(None) when everything is answered names the last answered msgid."""
    call = with_hooks("h1")
    call.reply("h1", [])
    with pytest.raises(AlreadyReplied) as info:
        call.reply(None, [])
    assert str(info.value) == "verb:hook /echo (msgid h1) was already acked; use send() to push more verbs"


def test_second_reply_app_wording() -> None:
    """A second reply after the app's own ack says 'already acked'."""
    call = with_hooks("h1")
    call.reply("h1", [SAY])
    with pytest.raises(AlreadyReplied) as info:
        call.reply("h1", [SAY])
    assert str(info.value) == "verb:hook /echo (msgid h1) was already acked; use send() to push more verbs"
    assert (info.value.msgid, info.value.call_sid) == ("h1", "c1")


def test_second_reply_auto_wording() -> None:
    """A reply after an automatic ack says 'automatically acked'."""
    call = with_hooks("h1")
    call.auto_ack("h1")
    with pytest.raises(AlreadyReplied) as info:
        call.reply("h1", [SAY])
    assert (
        str(info.value) == "verb:hook /echo (msgid h1) was automatically acked; use send() to push more verbs"
    )


def test_second_reply_to_session_new() -> None:
    """Replying to session:new after send() acked it raises AlreadyReplied (no hook in wording)."""
    call = active()
    with pytest.raises(AlreadyReplied) as info:
        call.reply("s1", [SAY])
    assert str(info.value) == "session:new (msgid s1) was already acked; use send() to push more verbs"


def test_reply_unknown_msgid() -> None:
    """A msgid jambonz never sent raises NoPendingHook."""
    with pytest.raises(NoPendingHook) as info:
        with_hooks("h1").reply("zzz", [])
    assert str(info.value) == "jambonz is not waiting for msgid zzz on call c1"
    assert info.value.msgid == "zzz"


@pytest.mark.parametrize(
    "mtype", ["call:status", "verb:status", "jambonz:error", "llm:event", "llm:tool-call"]
)
def test_fire_and_forget_not_tracked(mtype: str) -> None:
    """Messages that need no ack are not pending and cannot be replied to."""
    call = active()
    call.receive(msg(mtype, "n1"))
    assert call.pending() == []
    with pytest.raises(NoPendingHook):
        call.reply("n1", [])


@pytest.mark.parametrize("mtype", ["dial:confirm", "session:redirect", "session:new"])
def test_other_ack_types_tracked(mtype: str) -> None:
    """dial:confirm and mid-call session:* messages wait for their own ack."""
    call = active()
    call.receive(msg(mtype, "x1", hook="/h"))
    assert call.pending() == [Pending("x1", MessageType(mtype), "/h")]
    assert wire(call.reply("x1", [HANGUP])) == [{"type": "ack", "msgid": "x1", "data": [HANGUP]}]


def test_receive_reconnect_refused() -> None:
    """session:reconnect must go to reconnect(), not receive()."""
    with pytest.raises(ProtocolError) as info:
        active().receive(msg("session:reconnect", "r1"))
    assert str(info.value) == "session:reconnect goes to reconnect()"


# -- auto_ack ---------------------------------------------------------------------------


def test_auto_ack_pending() -> None:
    """auto_ack acks a waiting hook with auto=True."""
    call = with_hooks("h1")
    out = call.auto_ack("h1", [SAY])
    assert wire(out) == [{"type": "ack", "msgid": "h1", "data": [SAY]}]
    assert out[0].auto is True
    assert call.acked_by("h1") is AckedBy.AUTO


def test_auto_ack_after_reply_is_noop() -> None:
    """auto_ack after the app replied writes nothing and keeps APP."""
    call = with_hooks("h1")
    call.reply("h1", [])
    assert call.auto_ack("h1") == []
    assert call.acked_by("h1") is AckedBy.APP


def test_auto_ack_twice_is_noop() -> None:
    """A second auto_ack of the same msgid writes nothing."""
    call = with_hooks("h1")
    call.auto_ack("h1")
    assert call.auto_ack("h1") == []


def test_auto_ack_unknown_is_noop() -> None:
    """auto_ack of a msgid nobody waits for writes nothing."""
    assert with_hooks().auto_ack("nope") == []


def test_auto_ack_session_new_without_verbs_refused() -> None:
    """auto_ack never writes an empty session:new ack."""
    with pytest.raises(ProtocolError):
        opening().auto_ack("s1")


def test_acked_by_unknown_is_none() -> None:
    """acked_by() of an unanswered msgid is None."""
    assert with_hooks("h1").acked_by("h1") is None


# -- commands ---------------------------------------------------------------------------


def test_command_frame_shape() -> None:
    """A command frame carries type, command, queueCommand and data."""
    out = active().command("mute:status", MUTE)
    assert wire(out) == [{"type": "command", "command": "mute:status", "queueCommand": False, "data": MUTE}]
    assert (out[0].kind, out[0].verbs, out[0].acks) == ("mute:status", 0, None)


def test_command_call_sid_is_camel_case() -> None:
    """The leg is addressed by top-level camelCase callSid."""
    out = active().command("mute:status", MUTE, call_sid="leg-b")
    assert out[0].text == (
        '{"type":"command","command":"mute:status","queueCommand":false,"callSid":"leg-b",'
        '"data":{"mute_status":"mute"}}'
    )


def test_command_tool_call_id_top_level() -> None:
    """llm:tool-output carries tool_call_id at the top level, next to data."""
    data = {"type": "conversation.item.create"}
    out = active().command("llm:tool-output", data, tool_call_id="t1", call_sid="c1")
    assert out[0].message == {
        "type": "command",
        "command": "llm:tool-output",
        "queueCommand": False,
        "callSid": "c1",
        "tool_call_id": "t1",
        "data": data,
    }


def test_command_without_data() -> None:
    """data None is omitted from the frame (tts:flush)."""
    assert wire(active().command("tts:flush")) == [
        {"type": "command", "command": "tts:flush", "queueCommand": False}
    ]


def test_command_queue_flag() -> None:
    """queue=True sets queueCommand and a redirect counts its verbs."""
    out = active().command("redirect", [SAY, PLAY], queue=True)
    assert wire(out) == [redirect([SAY, PLAY], queue=True)]
    assert out[0].verbs == 2


def test_commands_before_opening_ack_held_in_order() -> None:
    """Commands before the opening ack are held past it, and written in order at jambonz's next frame."""
    call = opening()
    assert call.command("mute:status", MUTE) == []
    assert call.command("tts:flush") == []
    assert call.command("redirect", [PLAY], queue=True) == []
    assert wire(call.send([SAY])) == [{"type": "ack", "msgid": "s1", "data": [SAY]}]
    assert wire(call.receive(msg("call:status", "st1", call_status="trying"))) == [
        {"type": "command", "command": "mute:status", "queueCommand": False, "data": MUTE},
        {"type": "command", "command": "tts:flush", "queueCommand": False},
        redirect([PLAY], queue=True),
    ]


def test_held_commands_released_once() -> None:
    """Held commands are written once; the next send carries only itself."""
    call = opening()
    call.command("tts:flush")
    call.send([SAY])
    assert [o.kind for o in call.settle()] == ["tts:flush"]
    assert call.settle() == []
    assert wire(call.send([PLAY])) == [redirect([PLAY])]


def test_held_commands_released_by_reply() -> None:
    """reply() to the opening message acks it; held commands follow at the next frame."""
    call = opening()
    call.command("tts:flush")
    assert [o.kind for o in call.reply("s1", [SAY])] == ["ack"]
    assert [o.kind for o in call.receive(msg("verb:hook", "h1", hook="/x"))] == ["tts:flush"]


# -- the command race: jambonz listens for commands only once its call session exists -----------


def test_send_right_after_the_opening_ack_is_held() -> None:
    """feature-server 0.9.8 handles every frame of one socket read before its CallSession
    subscribes to 'command' (ws-requestor.js ~553; call-session.js ~130): a redirect written
    right behind the ack could share its read and be dropped, so it waits."""
    call = opening()
    assert [o.kind for o in call.send([SAY])] == ["ack"]
    assert call.send([PLAY]) == []
    assert call.command("mute:status", MUTE) == []
    assert call.state is CallState.STARTING
    released = call.receive(msg("call:status", "st1", call_status="trying"))
    assert wire(released) == [
        redirect([PLAY]),
        {"type": "command", "command": "mute:status", "queueCommand": False, "data": MUTE},
    ]
    assert call.state is CallState.ACTIVE
    assert wire(call.send([HANGUP])) == [redirect([HANGUP])]  # from now on at once


def test_settle_releases_held_commands_without_a_frame() -> None:
    """settle() (the I/O layer's timer) releases them when jambonz sends nothing."""
    call = opening()
    call.send([SAY])
    call.send([PLAY])
    assert wire(call.settle()) == [redirect([PLAY])]
    assert call.state is CallState.ACTIVE


def test_settle_does_nothing_outside_starting() -> None:
    call = opening()
    assert call.settle() == []
    assert call.state is CallState.OPENING
    assert active().settle() == []


def test_a_hook_in_starting_is_tracked_and_releases() -> None:
    """A hook as jambonz's next frame both releases held commands and waits for its ack."""
    call = opening()
    call.send([SAY])
    call.send([PLAY])
    assert wire(call.receive(msg("verb:hook", "h1", hook="/x"))) == [redirect([PLAY])]
    assert call.is_pending("h1")


def test_drop_while_starting_keeps_held_commands_for_the_reconnect() -> None:
    call = opening()
    call.send([SAY])
    call.send([PLAY])
    call.connection_lost(1006)
    assert call.state is CallState.DETACHED
    out = call.reconnect(msg("session:reconnect", "r1"))
    assert [o.kind for o in out] == ["ack", "redirect"]
    assert call.state is CallState.ACTIVE


def test_final_flag_overrides_the_code() -> None:
    """jambonz closing with 1001 (it rejected the call) ends it: the I/O layer says final."""
    call = active()
    call.connection_lost(1001, final=True)
    assert call.state is CallState.CLOSED
    call2 = active()
    call2.connection_lost(1001)
    assert call2.state is CallState.DETACHED


def test_reconnect_of_an_unknown_call_is_acked_at_once() -> None:
    """A session:reconnect opening a socket (the app restarted) is acked empty at once."""
    call, out = CallProtocol.open(msg("session:reconnect", "r9"))
    assert wire(out) == [{"type": "ack", "msgid": "r9"}]
    assert out[0].auto is True
    assert call.state is CallState.ACTIVE
    assert wire(call.send([SAY])) == [redirect([SAY])]


# -- connection lost / reconnect --------------------------------------------------------


def test_drop_abandons_pending_hooks() -> None:
    """A 1006 drop returns the abandoned hooks and detaches the call."""
    call = with_hooks("h1", "h2")
    abandoned = call.connection_lost(1006)
    assert [p.msgid for p in abandoned] == ["h1", "h2"]
    assert call.state is CallState.DETACHED
    assert call.pending() == []
    assert call.acked_by("h1") is AckedBy.ABANDONED


def test_reply_to_abandoned_hook() -> None:
    """Replying to an abandoned hook raises NoPendingHook mentioning 'abandoned'."""
    call = with_hooks("h1")
    call.connection_lost(1006)
    with pytest.raises(NoPendingHook) as info:
        call.reply("h1", [SAY])
    assert str(info.value) == (
        "verb:hook /echo (msgid h1) was abandoned by jambonz when the socket dropped; "
        "use send() to push verbs"
    )


def test_reply_none_after_drop_mentions_abandoned() -> None:
    """reply(None) after a drop reports the abandoned hook."""
    call = with_hooks("h1")
    call.connection_lost(1011)
    with pytest.raises(NoPendingHook, match="abandoned"):
        call.reply(None, [])


def test_auto_ack_while_detached_is_noop() -> None:
    """auto_ack while detached writes nothing."""
    call = with_hooks("h1")
    call.connection_lost(1006)
    assert call.auto_ack("h1") == []


def test_detached_holds_commands_and_sends() -> None:
    """While detached, commands and sends are held (nothing written)."""
    call = active()
    call.connection_lost(1006)
    assert call.command("mute:status", MUTE) == []
    assert call.send([PLAY]) == []


def test_reconnect_after_opening_ack() -> None:
    """Reconnect after the opening ack: auto ack of the reconnect, then held frames in order."""
    call = with_hooks("h1")
    call.connection_lost(1006)
    call.command("mute:status", MUTE)
    call.send([PLAY], exec_immediate=False)
    out = call.reconnect(msg("session:reconnect", "r1"))
    assert wire(out) == [
        {"type": "ack", "msgid": "r1"},
        {"type": "command", "command": "mute:status", "queueCommand": False, "data": MUTE},
        redirect([PLAY], queue=True),
    ]
    assert out[0].auto is True
    assert call.state is CallState.ACTIVE
    assert call.acked_by("r1") is AckedBy.AUTO
    assert call.pending() == []


def test_reconnect_then_send_is_redirect() -> None:
    """After a reconnect, sends are written at once as redirects."""
    call = active()
    call.connection_lost(1006)
    call.reconnect(msg("session:reconnect", "r1"))
    assert wire(call.send([PLAY])) == [redirect([PLAY])]


def test_drop_before_opening_ack_keeps_it_owed() -> None:
    """A drop before the opening ack keeps it owed but hides it from pending()."""
    call = opening()
    assert call.connection_lost(1006) == []
    assert call.opening_ack_owed is True
    assert call.pending() == []
    assert call.state is CallState.DETACHED


def test_reconnect_rekeys_owed_opening_ack() -> None:
    """Reconnect while the opening ack is owed: the reconnect msgid becomes the initial msgid."""
    call = opening()
    call.connection_lost(1006)
    assert call.reconnect(msg("session:reconnect", "r1")) == []
    assert call.state is CallState.OPENING
    assert call.initial_msgid == "r1"
    assert call.pending() == [Pending("r1", MessageType.SESSION_RECONNECT, None)]
    assert wire(call.send([SAY])) == [{"type": "ack", "msgid": "r1", "data": [SAY]}]
    assert call.state is CallState.STARTING  # the re-keyed session:new: jambonz's session starts now


def test_reconnect_sends_held_opening_send_as_ack() -> None:
    """A send() held while detached before the opening ack becomes the reconnect's ack, then commands."""
    call = opening()
    call.connection_lost(1006)
    assert call.send([SAY]) == []
    assert call.command("mute:status", MUTE) == []
    out = call.reconnect(msg("session:reconnect", "r1"))
    assert wire(out) == [{"type": "ack", "msgid": "r1", "data": [SAY]}]
    assert wire(call.settle()) == [
        {"type": "command", "command": "mute:status", "queueCommand": False, "data": MUTE},
    ]
    assert out[0].auto is False
    assert call.acked_by("r1") is AckedBy.APP
    assert call.opening_ack_owed is False


def test_reconnect_old_msgid_no_longer_owed() -> None:
    """After the re-key, the old session:new msgid is not waiting any more."""
    call = opening()
    call.connection_lost(1006)
    call.reconnect(msg("session:reconnect", "r1"))
    with pytest.raises(NoPendingHook):
        call.reply("s1", [SAY])


def test_reconnect_with_wrong_type() -> None:
    """reconnect() only takes session:reconnect."""
    call = active()
    call.connection_lost(1006)
    with pytest.raises(ProtocolError) as info:
        call.reconnect(msg("session:new", "s2"))
    assert str(info.value) == "session:new is not a reconnect"


def test_empty_ack_to_rekeyed_session_new_raises() -> None:
    """The reconnect that stands in for session:new still refuses an empty ack."""
    call = opening()
    call.connection_lost(1006)
    call.reconnect(msg("session:reconnect", "r1"))
    with pytest.raises(ProtocolError):
        call.reply("r1", [])


def test_too_large_send_while_detached_raises_at_once() -> None:
    """An oversized send while detached raises FrameTooLarge at once, not at reconnect."""
    call = opening()
    call.connection_lost(1006)
    with pytest.raises(FrameTooLarge):
        call.send(BIG)


def test_second_send_while_detached_becomes_redirect() -> None:
    """Two sends held before the opening ack replay as ack + redirect, as they would connected."""
    call = opening()
    call.connection_lost(1006)
    call.send([SAY])
    call.send([PLAY])
    assert wire(call.reconnect(msg("session:reconnect", "r1"))) == [
        {"type": "ack", "msgid": "r1", "data": [SAY]},
    ]
    assert wire(call.settle()) == [redirect([PLAY])]


# -- close ------------------------------------------------------------------------------


def test_close_1000_ends_the_call() -> None:
    """connection_lost(1000) closes the call and abandons pending hooks."""
    call = with_hooks("h1")
    assert [p.msgid for p in call.connection_lost(1000)] == ["h1"]
    assert call.state is CallState.CLOSED


@pytest.mark.parametrize(
    "action",
    [
        lambda c: c.send([SAY]),
        lambda c: c.send([]),
        lambda c: c.reply("h1", [SAY]),
        lambda c: c.reply(None, []),
        lambda c: c.command("mute:status", MUTE),
    ],
    ids=["send", "send-empty", "reply", "reply-none", "command"],
)
def test_every_send_after_1000_raises(action: Any) -> None:
    """After a 1000 close every send raises SessionClosed."""
    call = with_hooks("h1")
    call.connection_lost(1000)
    with pytest.raises(SessionClosed) as info:
        action(call)
    assert str(info.value) == "call c1 has ended; nothing more can be sent on it"
    assert info.value.call_sid == "c1"


def test_close_drops_held_commands() -> None:
    """A 1000 close while detached forgets the held frames and a reconnect is refused."""
    call = active()
    call.connection_lost(1006)
    call.command("mute:status", MUTE)
    call.connection_lost(1000)
    assert call.state is CallState.CLOSED
    with pytest.raises(SessionClosed) as info:
        call.reconnect(msg("session:reconnect", "r1"))
    assert str(info.value) == "call ended; a reconnect cannot revive it"


def test_close_method_is_1000() -> None:
    """close() is the app's 1000 close."""
    call = opening()
    call.close()
    assert call.state is CallState.CLOSED
    with pytest.raises(SessionClosed):
        call.send([SAY])


def test_auto_ack_after_close_is_noop() -> None:
    """auto_ack after the call ended writes nothing."""
    call = with_hooks("h1")
    call.connection_lost(1000)
    assert call.auto_ack("h1") == []


def test_connection_lost_after_close() -> None:
    """A second connection_lost on a closed call keeps it closed."""
    call = active()
    call.close()
    assert call.connection_lost(1006) == []
    assert call.state is CallState.CLOSED


# -- frame limit ------------------------------------------------------------------------


def test_too_large_opening_send_keeps_ack_owed() -> None:
    """A too-large first send raises and leaves the opening ack owed and commands held."""
    call = opening()
    call.command("tts:flush")
    with pytest.raises(FrameTooLarge) as info:
        call.send(BIG)
    assert info.value.call_sid == "c1"
    assert call.state is CallState.OPENING
    assert call.opening_ack_owed is True
    assert call.acked_by("s1") is None
    assert [o.kind for o in call.send([SAY])] == ["ack"]
    assert [o.kind for o in call.settle()] == ["tts:flush"]


def test_too_large_reply_keeps_hook_pending() -> None:
    """A too-large reply raises and the hook still waits."""
    call = with_hooks("h1")
    with pytest.raises(FrameTooLarge):
        call.reply("h1", BIG)
    assert call.is_pending("h1")
    assert call.reply("h1", [SAY])[0].acks == "h1"


def test_too_large_command_not_held() -> None:
    """A too-large command before the ack raises and is not held."""
    call = opening()
    with pytest.raises(FrameTooLarge):
        call.command("redirect", BIG)
    assert [o.kind for o in call.send([SAY])] == ["ack"]


def test_too_large_redirect_send() -> None:
    """A too-large later send raises FrameTooLarge naming redirect."""
    with pytest.raises(FrameTooLarge, match=r"^redirect frame is \d+ bytes"):
        active().send(BIG)


def test_custom_limit() -> None:
    """The limit given to open() applies to every frame."""
    call, _ = CallProtocol.open(msg("session:new", "s1"), limit=40)
    with pytest.raises(FrameTooLarge) as info:
        call.send([SAY])
    assert info.value.limit == 40


class TestWebhookCall:
    """``socket=False``: a call served over HTTP webhooks; only a hook's answer reaches jambonz."""

    def webhook(self) -> CallProtocol:
        call, out = CallProtocol.open(msg("session:new", "s1"), socket=False)
        assert out == [] and call.socket is False
        return call

    def test_first_send_answers_session_new(self) -> None:
        call = self.webhook()
        assert wire(call.send([SAY])) == [{"type": "ack", "msgid": "s1", "data": [SAY]}]

    def test_send_answers_the_newest_hook_waiting_not_a_redirect(self) -> None:
        call = self.webhook()
        call.send([SAY])
        call.receive(msg("verb:hook", "h1", hook="/a"))
        call.receive(msg("verb:hook", "h2", hook="/b"))
        assert wire(call.send([PLAY])) == [{"type": "ack", "msgid": "h2", "data": [PLAY]}]
        assert call.is_pending("h1") and not call.is_pending("h2")

    def test_send_with_no_hook_waiting_raises_and_changes_nothing(self) -> None:
        call = self.webhook()
        call.send([SAY])
        with pytest.raises(NoSocket, match="no hook is waiting") as info:
            call.send([PLAY])
        assert info.value.call_sid == "c1" and call.pending() == []

    def test_every_command_raises(self) -> None:
        call = self.webhook()
        call.send([SAY])
        call.receive(msg("call:status", "st1", call_status="in-progress"))
        for name in ("mute:status", "redirect", "whisper"):
            with pytest.raises(NoSocket, match=f"the {name} command needs a socket"):
                call.command(name, MUTE)

    def test_nothing_to_send_is_still_nothing(self) -> None:
        call = self.webhook()
        call.send([SAY])
        assert call.send([]) == []
