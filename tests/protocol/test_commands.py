"""Tests for jambonz_lab.protocol.commands: wire shapes of protocol doc §3.3."""

from __future__ import annotations

from typing import Any

import pytest

from jambonz_lab.exceptions import CommandError, JambonzLabError
from jambonz_lab.protocol import commands as c


def error(fn: Any, *args: Any, **kwargs: Any) -> CommandError:
    """The CommandError raised by ``fn(*args, **kwargs)``."""
    with pytest.raises(CommandError) as info:
        fn(*args, **kwargs)
    return info.value


# -- wire shapes ------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["mute", "unmute"])
def test_mute_status(status: str) -> None:
    """mute:status uses the object form {mute_status}."""
    assert c.mute_status(status) == ("mute:status", {"mute_status": status})


def test_mute_status_default() -> None:
    """mute_status() defaults to mute."""
    assert c.mute_status() == ("mute:status", {"mute_status": "mute"})


def test_conf_mute_status() -> None:
    """conf:mute-status uses conf_mute_status, not mute_status."""
    assert c.conf_mute_status("unmute") == ("conf:mute-status", {"conf_mute_status": "unmute"})


def test_conf_hold_status() -> None:
    """conf:hold-status carries conf_hold_status and an optional wait_hook."""
    assert c.conf_hold_status("unhold") == ("conf:hold-status", {"conf_hold_status": "unhold"})
    assert c.conf_hold_status("hold", wait_hook="/wait") == (
        "conf:hold-status",
        {"conf_hold_status": "hold", "wait_hook": "/wait"},
    )


@pytest.mark.parametrize("action", ["untag", "uncoach", "hold", "unhold", "mute", "unmute", "kick"])
def test_conf_participant_action(action: str) -> None:
    """conf:participant-action knows every FS action, kick included."""
    assert c.conf_participant_action(action) == ("conf:participant-action", {"action": action})


def test_conf_participant_action_tag_and_wait_hook() -> None:
    """tag/coach carry the tag; hold may carry a wait_hook."""
    assert c.conf_participant_action("coach", tag="agents") == (
        "conf:participant-action",
        {"action": "coach", "tag": "agents"},
    )
    assert c.conf_participant_action("hold", wait_hook="/w") == (
        "conf:participant-action",
        {"action": "hold", "wait_hook": "/w"},
    )


@pytest.mark.parametrize("status", ["pause", "resume", "silence"])
def test_listen_status(status: str) -> None:
    """listen:status uses the object form {listen_status}."""
    assert c.listen_status(status) == ("listen:status", {"listen_status": status})


def test_stream_status() -> None:
    """stream=True names the command stream:status with stream_status."""
    assert c.listen_status("pause", stream=True) == ("stream:status", {"stream_status": "pause"})


def test_transcribe_status() -> None:
    """transcribe:status uses {transcribe_status}."""
    assert c.transcribe_status("silence") == ("transcribe:status", {"transcribe_status": "silence"})


def test_record_full() -> None:
    """record uses FS's recordingID / siprecServerURL keys."""
    assert c.record(
        "startCallRecording",
        type="siprec",
        recording_id="r1",
        siprec_server_url="sip:rec@example.com",
        headers={"X-A": "1"},
    ) == (
        "record",
        {
            "action": "startCallRecording",
            "type": "siprec",
            "recordingID": "r1",
            "siprecServerURL": "sip:rec@example.com",
            "headers": {"X-A": "1"},
        },
    )


@pytest.mark.parametrize("action", ["stopCallRecording", "pauseCallRecording", "resumeCallRecording"])
def test_record_minimal(action: str) -> None:
    """record without options sends only the action."""
    assert c.record(action) == ("record", {"action": action})


def test_record_cloud_empty_headers_dropped() -> None:
    """type cloud is kept, empty headers are left out."""
    assert c.record("startCallRecording", type="cloud", headers={}) == (
        "record",
        {"action": "startCallRecording", "type": "cloud"},
    )


def test_whisper_single_say() -> None:
    """One verb is sent as an object under whisper."""
    assert c.whisper({"verb": "say", "text": "hi"}) == ("whisper", {"whisper": {"verb": "say", "text": "hi"}})


def test_whisper_list_normalized() -> None:
    """Several verbs are sent as a list, each normalized."""
    assert c.whisper([{"say": {"text": "a"}}, {"verb": "play", "url": "https://x/a.wav"}]) == (
        "whisper",
        {"whisper": [{"verb": "say", "text": "a"}, {"verb": "play", "url": "https://x/a.wav"}]},
    )


def test_dtmf_wrapped() -> None:
    """dtmf is wrapped {dtmf:{digit,duration}} with duration 250 by default."""
    assert c.dtmf("12#") == ("dtmf", {"dtmf": {"digit": "12#", "duration": 250}})
    assert c.dtmf("A*w", duration=400) == ("dtmf", {"dtmf": {"digit": "A*w", "duration": 400}})


def test_sip_request_wrapped() -> None:
    """sip:request is wrapped {sip_request:{...}} with snake_case keys."""
    assert c.sip_request("INFO", content_type="application/json", content="{}", headers={"X-A": "1"}) == (
        "sip:request",
        {
            "sip_request": {
                "method": "INFO",
                "content_type": "application/json",
                "content": "{}",
                "headers": {"X-A": "1"},
            }
        },
    )


def test_sip_request_method_only() -> None:
    """A bare method sends only the method."""
    assert c.sip_request("NOTIFY") == ("sip:request", {"sip_request": {"method": "NOTIFY"}})


def test_dub_validated_as_verb() -> None:
    """dub data is the dub verb's properties without 'verb'."""
    assert c.dub("addTrack", "t1") == ("dub", {"action": "addTrack", "track": "t1"})
    assert c.dub("playOnTrack", "t1", play="https://x/a.mp3", loop=True) == (
        "dub",
        {"action": "playOnTrack", "track": "t1", "play": "https://x/a.mp3", "loop": True},
    )


def test_config_validated_as_verb() -> None:
    """config data is camelCased config verb properties without 'verb'."""
    assert c.config(notify_events=True) == ("config", {"notifyEvents": True})


@pytest.mark.parametrize("level", [-2, 3.5, 0, "-2 dB", "+3.5dB", " 6 dB "])
def test_boost_audio_signal(level: int | float | str) -> None:
    """boostAudioSignal data is a number or a 'N dB' string, sent as given."""
    assert c.boost_audio_signal(level) == ("boostAudioSignal", level)


@pytest.mark.parametrize("path", ["no-media", "partial-media", "full-media"])
def test_media_path(path: str) -> None:
    """media:path data is the bare string."""
    assert c.media_path(path) == ("media:path", path)


def test_call_status_object_form() -> None:
    """call:status uses the object form {call_status}, default completed."""
    assert c.call_status() == ("call:status", {"call_status": "completed"})
    assert c.call_status("no-answer") == ("call:status", {"call_status": "no-answer"})


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fn", "args", "command", "message"),
    [
        (
            c.mute_status,
            ("mutee",),
            "mute:status",
            "mute:status: status must be one of 'mute', 'unmute', not 'mutee'",
        ),
        (
            c.conf_mute_status,
            ("x",),
            "conf:mute-status",
            "conf:mute-status: status must be one of 'mute', 'unmute', not 'x'",
        ),
        (
            c.conf_hold_status,
            ("x",),
            "conf:hold-status",
            "conf:hold-status: status must be one of 'hold', 'unhold', not 'x'",
        ),
        (
            c.conf_participant_action,
            ("ban",),
            "conf:participant-action",
            "conf:participant-action: action must be one of 'tag', 'untag', 'coach', 'uncoach', 'hold', "
            "'unhold', 'mute', 'unmute', 'kick', not 'ban'",
        ),
        (
            c.listen_status,
            ("stop",),
            "listen:status",
            "listen:status: status must be one of 'pause', 'resume', 'silence', not 'stop'",
        ),
        (
            c.transcribe_status,
            ("x",),
            "transcribe:status",
            "transcribe:status: status must be one of 'pause', 'resume', 'silence', not 'x'",
        ),
        (
            c.record,
            ("start",),
            "record",
            "record: action must be one of 'startCallRecording', 'stopCallRecording', "
            "'pauseCallRecording', 'resumeCallRecording', not 'start'",
        ),
        (
            c.media_path,
            ("none",),
            "media:path",
            "media:path: path must be one of 'no-media', 'partial-media', 'full-media', not 'none'",
        ),
        (
            c.call_status,
            ("busy",),
            "call:status",
            "call:status: status must be one of 'completed', 'no-answer', not 'busy'",
        ),
    ],
)
def test_invalid_enum(fn: Any, args: tuple[Any, ...], command: str, message: str) -> None:
    """An invalid enum value raises a one-line CommandError naming the command."""
    exc = error(fn, *args)
    assert str(exc) == message
    assert exc.command == command


def test_stream_status_error_names_stream() -> None:
    """The stream variant names stream:status in its error."""
    exc = error(c.listen_status, "stop", stream=True)
    assert str(exc) == "stream:status: status must be one of 'pause', 'resume', 'silence', not 'stop'"
    assert exc.command == "stream:status"


def test_record_invalid_type() -> None:
    """record type must be siprec or cloud."""
    assert str(error(c.record, "startCallRecording", type="local")) == (
        "record: type must be one of 'siprec', 'cloud', not 'local'"
    )


@pytest.mark.parametrize("action", ["tag", "coach"])
def test_participant_action_needs_tag(action: str) -> None:
    """tag and coach need a tag."""
    assert str(error(c.conf_participant_action, action)) == (
        f"conf:participant-action: action '{action}' needs a tag"
    )


def test_whisper_only_say_play() -> None:
    """Only say and play can be whispered."""
    exc = error(c.whisper, {"verb": "pause", "length": 1})
    assert str(exc) == "whisper: only say and play can be whispered, not 'pause'"
    assert exc.command == "whisper"


def test_whisper_empty() -> None:
    """An empty whisper list is refused."""
    assert str(error(c.whisper, [])) == "whisper: give at least one say or play verb"


def test_whisper_invalid_verb() -> None:
    """An invalid whispered verb reports the VerbError line under whisper."""
    assert str(error(c.whisper, {"verb": "say", "txt": "hi"})) == (
        "whisper: say: unknown property 'txt' (did you mean 'text'?)"
    )


@pytest.mark.parametrize("digit", ["x", "", "1 2", 5])
def test_dtmf_invalid_digit(digit: Any) -> None:
    """dtmf refuses non-DTMF characters."""
    assert (
        str(error(c.dtmf, digit)) == f"dtmf: digit must be DTMF characters (0-9, *, #, A-D, w), not {digit!r}"
    )


@pytest.mark.parametrize("duration", [0, -5, True, 1.5])
def test_dtmf_invalid_duration(duration: Any) -> None:
    """dtmf duration must be a positive int of ms."""
    assert str(error(c.dtmf, "1", duration=duration)) == (
        f"dtmf: duration must be a positive number of ms, not {duration!r}"
    )


def test_sip_request_lower_case_method() -> None:
    """sip:request needs an upper-case method."""
    assert (
        str(error(c.sip_request, "info"))
        == "sip:request: method must be an upper-case SIP method, not 'info'"
    )


def test_sip_request_content_needs_type() -> None:
    """sip:request content needs a content_type."""
    assert str(error(c.sip_request, "INFO", content="x")) == "sip:request: content needs a content_type"


def test_dub_invalid_action() -> None:
    """dub is validated by the dub verb model and reported as CommandError."""
    exc = error(c.dub, "bogus", "t1")
    assert str(exc) == (
        "dub: property 'action' should be 'addTrack', 'removeTrack', 'silenceTrack', "
        "'playOnTrack' or 'sayOnTrack'"
    )
    assert exc.command == "dub"


def test_dub_unknown_property() -> None:
    """An unknown dub property is refused."""
    assert str(error(c.dub, "addTrack", "t1", volume=3)) == "dub: unknown property 'volume'"


def test_config_unknown_property() -> None:
    """An unknown config property is refused with a suggestion."""
    exc = error(c.config, notifyEventz=True)
    assert str(exc) == "config: unknown property 'notifyEventz' (did you mean 'notifyEvents'?)"
    assert exc.command == "config"


@pytest.mark.parametrize("level", ["loud", "-2", "dB", True, None])
def test_boost_audio_signal_invalid(level: Any) -> None:
    """boostAudioSignal refuses anything but a number or 'N dB'."""
    assert str(error(c.boost_audio_signal, level)) == (
        f"boostAudioSignal: level must be a number or like '-2 dB', not {level!r}"
    )


def test_command_error_is_value_error() -> None:
    """CommandError is a ValueError and a JambonzLabError."""
    exc = error(c.media_path, "x")
    assert isinstance(exc, ValueError)
    assert isinstance(exc, JambonzLabError)
