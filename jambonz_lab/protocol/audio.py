"""The audio socket of jambonz's ``listen`` / ``stream`` verbs, sans I/O.

``listen`` (alias ``stream``, and ``config.listen``) has FreeSWITCH's
``mod_audio_fork`` open a second WebSocket to the app, subprotocol
:data:`SUBPROTOCOL` (feature-server 0.9.8 ``lib/tasks/listen.js`` ~154–185).
On that socket:

jambonz → app

* first, one JSON text frame of metadata: ``Object.assign({sampleRate, mixType},
  callInfo, verb.metadata)`` (``listen.js`` ~168–171), so ``callSid``, ``from``,
  ``to``, ``direction``, … and the verb's own ``metadata`` keys sit flat at the
  top level (not under a ``metadata`` key); ``mixType`` is ``mono`` (default),
  ``stereo`` or ``mixed``, ``sampleRate`` defaults to 8000 (``listen.js`` ~45–46);
* then binary frames of L16 PCM: 16-bit signed little-endian samples, two
  channels interleaved for ``stereo`` (caller left, callee right), one channel
  otherwise;
* JSON events: ``{"event":"dtmf","dtmf":"1","duration":…}`` when ``passDtmf``
  (``listen.js`` ~223–230; note ``event``, not ``type``);
  ``{"type":"playDone","data":{"id":…,…play results}}`` after a ``playAudio``
  finished (``listen.js`` ~266–281); ``{"type":"mark","data":{"name":…,
  "event":"playout"|"cleared"}}`` from mod_audio_fork itself (``jambonz/freeswitch-modules``
  ``30f2189`` ``mod_audio_fork/lws_glue.cpp`` ``send_mark_event`` ~570–576): ``playout`` when
  the audio before the mark has played (~993–1012, ~1035–1043), ``cleared`` for the marks
  pending when a ``killAudio`` emptied the buffer (~936–960). Marks are answered only on a
  ``bidirectionalAudio.streaming`` fork (``mod_audio_fork.c`` ~48–50, ~275–279).

app → jambonz (text frames)

* ``{"type":"playAudio","data":{"audioContent":<base64>,"audioContentType":
  "raw"|"wav"|"wave","sampleRate":N,"queuePlay"?:bool,"id"?:…}}``
  (``lws_glue.cpp`` ~212–290: raw at 8/16/24/32/48/64 kHz, any other rate played as
  16 kHz); without ``queuePlay`` a play interrupts the queue (``listen.js`` ~284–305);
* ``{"type":"killAudio"}`` (``uuid_break``, ``listen.js`` ~307–311; ``lws_glue.cpp``
  ~291–299 also empties the streaming buffer), ``{"type":"disconnect"}`` (ends the verb,
  ~313–317), ``{"type":"mark","data":{"name":…}}`` (``data.name`` a string; a flat
  ``name`` is not read, ``lws_glue.cpp`` ~301–319; at most 30 pending, ``MAX_MARKS`` ~31),
  ``{"type":"clearMarks"}`` (drops the pending marks; no event for them, ~321–332);
  ``{"type":"error"}`` ends the verb too (~348–352, ``listen.js`` ``_onError``);
* binary L16 frames back, in bidirectional streaming mode
  (``bidirectionalAudio: {enabled, streaming, sampleRate}``).

SDK disagreements (the server wins): jambonz-python-sdk 's AudioStream waits
for a ``{"type":"setup"}`` metadata frame and reads dtmf as ``type`` — the
server sends neither; it sends ``mark`` as ``{"type":"mark","name":…}``, which
mod_audio_fork ignores (it reads ``data.name``, ``lws_glue.cpp`` ~302–304):
@jambonz/sdk's ``{"type":"mark","data":{"name":…}}`` is the shape, and ours.

The API (stable; the simulator imports it)::

    SUBPROTOCOL, MIX_TYPES, channels_of(mix_type)
    AudioMetadata / parse_metadata(text) / metadata_frame(call_sid, ...)
    decode_l16(data, channels) -> int16 array (channels, n)
    encode_l16(samples) -> bytes          # 1-D mono or (channels, n)
    frame_size(sample_rate, channels, ms=20) -> bytes per frame
    AudioEvent / parse_event(text)        # dtmf, playDone, mark, other
    dtmf_event(digit, duration) / play_done_event(id, **results) / mark_event(name, event)
    play_audio(audio, sample_rate=..., ...) / kill_audio() / disconnect() / mark(name) / clear_marks()
    AudioCommand / parse_command(text); decode_play_audio(data) -> (samples, sample_rate)
    to_wav(samples, sample_rate) / from_wav(data) -> (samples, sample_rate)

Samples are numpy ``int16`` arrays, shape ``(channels, n)``. Bad input raises
:exc:`~jambonz_lab.exceptions.InvalidFrame` (a frame from the wire) or
:exc:`~jambonz_lab.exceptions.CommandError` (a value the app gave).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import wave
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..exceptions import CommandError, InvalidFrame

__all__ = [
    "COMMANDS",
    "MIX_TYPES",
    "SUBPROTOCOL",
    "AudioCommand",
    "AudioEvent",
    "AudioMetadata",
    "Samples",
    "channels_of",
    "clear_marks",
    "decode_l16",
    "decode_play_audio",
    "disconnect",
    "dtmf_event",
    "encode_l16",
    "frame_size",
    "from_wav",
    "kill_audio",
    "mark",
    "mark_event",
    "metadata_frame",
    "parse_command",
    "parse_event",
    "parse_metadata",
    "play_audio",
    "play_done_event",
    "to_wav",
]

#: the WebSocket subprotocol mod_audio_fork asks for
SUBPROTOCOL = "audio.drachtio.org"
#: listen's ``mixType`` values
MIX_TYPES = ("mono", "stereo", "mixed")
#: the text commands an app may send on the audio socket
COMMANDS = ("playAudio", "killAudio", "disconnect", "mark", "clearMarks")

Samples = npt.NDArray[np.int16]


def channels_of(mix_type: str) -> int:
    """2 for ``stereo``, else 1 (``mono`` is the caller, ``mixed`` both legs summed)."""
    return 2 if mix_type == "stereo" else 1


@dataclass(frozen=True)
class AudioMetadata:
    """The first text frame of an audio socket."""

    call_sid: str | None
    sample_rate: int
    mix_type: str
    channels: int
    from_: str | None
    to: str | None
    #: the whole frame as sent (callInfo and the verb's metadata keys, flat)
    fields: dict[str, Any] = field(default_factory=dict)


def _json_object(raw: str | bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidFrame(f"{what} is not JSON: {exc}", raw=raw) from None
    if not isinstance(obj, dict):
        raise InvalidFrame(f"{what} is not a JSON object", raw=raw)
    return obj


def parse_metadata(raw: str | bytes | Mapping[str, Any]) -> AudioMetadata:
    """The metadata frame; ``sampleRate`` missing means 8000, ``mixType`` missing means mono."""
    obj = dict(raw) if isinstance(raw, Mapping) else _json_object(raw, "audio metadata")
    text = raw if isinstance(raw, (str, bytes)) else None
    rate = obj.get("sampleRate", 8000)
    if isinstance(rate, str) and rate.isdigit():
        rate = int(rate)
    if not isinstance(rate, int) or isinstance(rate, bool) or rate <= 0:
        raise InvalidFrame(f"audio metadata: sampleRate {rate!r} is not a positive integer", raw=text)
    mix = obj.get("mixType", "mono")
    if mix not in MIX_TYPES:
        raise InvalidFrame(f"audio metadata: mixType {mix!r} is not one of {', '.join(MIX_TYPES)}", raw=text)
    sid = obj.get("callSid")
    return AudioMetadata(
        call_sid=sid if isinstance(sid, str) else None,
        sample_rate=rate,
        mix_type=mix,
        channels=channels_of(mix),
        from_=_opt_str(obj.get("from")),
        to=_opt_str(obj.get("to")),
        fields=obj,
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def metadata_frame(
    call_sid: str,
    *,
    from_: str = "",
    to: str = "",
    sample_rate: int = 8000,
    mix_type: str = "mono",
    call_info: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> str:
    """The metadata text frame jambonz sends first: ``{sampleRate, mixType}``, then
    ``call_info`` (callSid/from/to filled in), then the verb's ``metadata``, flat."""
    if mix_type not in MIX_TYPES:
        raise CommandError(f"mixType {mix_type!r} is not one of {', '.join(MIX_TYPES)}", command="listen")
    info = {"callSid": call_sid, "from": from_, "to": to, **(call_info or {})}
    return json.dumps({"sampleRate": sample_rate, "mixType": mix_type, **info, **(metadata or {})})


# -- L16 --------------------------------------------------------------------------------------


def frame_size(sample_rate: int, channels: int = 1, ms: int = 20) -> int:
    """Bytes in one frame of ``ms`` milliseconds (20 ms at 8 kHz mono: 320)."""
    return sample_rate * ms // 1000 * channels * 2


def decode_l16(data: bytes, channels: int = 1) -> Samples:
    """L16 little-endian bytes as int16 samples, shape ``(channels, n)`` (stereo de-interleaved)."""
    step = 2 * channels
    if len(data) % step:
        raise InvalidFrame(
            f"audio frame of {len(data)} bytes is not a whole number of {channels}-channel 16-bit samples",
            raw=data[:64],
        )
    flat = np.frombuffer(data, dtype="<i2").astype(np.int16)
    return flat.reshape(-1, channels).T.copy()


def _as_samples(samples: Any) -> Samples:
    arr = np.asarray(samples)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise CommandError(
            f"audio must be 1-D (mono) or 2-D (channels, n), not {arr.ndim}-D", command="playAudio"
        )
    if arr.dtype != np.int16:
        if not np.issubdtype(arr.dtype, np.integer):
            raise CommandError(f"audio must be int16 samples, not {arr.dtype}", command="playAudio")
        if arr.size and (arr.min() < -32768 or arr.max() > 32767):
            raise CommandError("audio samples do not fit in 16 bits", command="playAudio")
        arr = arr.astype(np.int16)
    return arr


def encode_l16(samples: Any) -> bytes:
    """int16 samples (1-D mono, or ``(channels, n)``) as interleaved L16 little-endian bytes."""
    arr = _as_samples(samples)
    return arr.T.astype("<i2").tobytes()


def to_wav(samples: Any, sample_rate: int) -> bytes:
    """A WAV file (16-bit PCM) of ``samples``."""
    arr = _as_samples(samples)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(arr.shape[0])
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(encode_l16(arr))
    return buf.getvalue()


def from_wav(data: bytes) -> tuple[Samples, int]:
    """A 16-bit PCM WAV file's samples ``(channels, n)`` and sample rate."""
    try:
        with wave.open(io.BytesIO(data), "rb") as w:
            if w.getsampwidth() != 2:
                raise InvalidFrame(f"WAV audio is {8 * w.getsampwidth()}-bit, not 16-bit", raw=data[:64])
            channels, rate = w.getnchannels(), w.getframerate()
            pcm = w.readframes(w.getnframes())
    except (wave.Error, EOFError) as exc:
        raise InvalidFrame(f"not a WAV file: {exc}", raw=data[:64]) from None
    return decode_l16(pcm, channels), rate


# -- events (jambonz -> app) ------------------------------------------------------------------


@dataclass(frozen=True)
class AudioEvent:
    """A JSON text frame jambonz sent after the metadata: ``kind`` is ``dtmf``, ``playDone``,
    ``mark`` or whatever ``type`` / ``event`` said; ``data`` the event's fields."""

    kind: str
    data: dict[str, Any]
    raw: dict[str, Any]


def parse_event(raw: str | bytes) -> AudioEvent:
    """One event frame. dtmf comes as ``{"event":"dtmf","dtmf","duration"}``; ``data`` then
    holds ``dtmf`` and ``duration``; playDone and mark carry ``data`` (a mark sent flat,
    ``{"type":"mark","name":…}``, is read too)."""
    obj = _json_object(raw, "audio event")
    if obj.get("event") == "dtmf":
        return AudioEvent("dtmf", {"dtmf": obj.get("dtmf"), "duration": obj.get("duration")}, obj)
    kind = obj.get("type", obj.get("event"))
    if not isinstance(kind, str):
        raise InvalidFrame("audio event has no type", raw=raw)
    data = obj.get("data")
    if not isinstance(data, dict):
        data = {k: v for k, v in obj.items() if k != "type"}
    return AudioEvent(kind, data, obj)


def dtmf_event(digit: str, duration: int = 800) -> str:
    """What listen.js sends on a DTMF with passDtmf (``duration`` in 8 kHz samples)."""
    return json.dumps({"event": "dtmf", "dtmf": digit, "duration": duration})


def play_done_event(id: Any = None, **results: Any) -> str:
    """What listen.js sends when a playAudio finished (``results``: the play's outcome)."""
    return json.dumps({"type": "playDone", "data": {"id": id, **results}})


def mark_event(name: str, event: str = "playout") -> str:
    """A mark reached (``event`` ``playout``) or cleared by a killAudio (``cleared``): what
    mod_audio_fork's ``send_mark_event`` writes (``lws_glue.cpp`` ~570–576)."""
    return json.dumps({"type": "mark", "data": {"name": name, "event": event}})


# -- commands (app -> jambonz) ----------------------------------------------------------------


def play_audio(
    audio: Any,
    *,
    sample_rate: int = 8000,
    content_type: str | None = None,
    queue_play: bool | None = None,
    id: str | None = None,
) -> str:
    """A playAudio frame. ``audio`` is int16 samples (sent ``raw``, L16 at ``sample_rate``),
    WAV bytes (sent ``wav``; ``sample_rate`` read from the file) or other bytes (``raw``
    PCM as given)."""
    if isinstance(audio, (bytes, bytearray, memoryview)):
        content = bytes(audio)
        kind = content_type or ("wav" if content[:4] == b"RIFF" and content[8:12] == b"WAVE" else "raw")
        if kind == "wav":
            sample_rate = from_wav(content)[1]
    else:
        arr = _as_samples(audio)
        if arr.shape[0] != 1:
            raise CommandError("playAudio plays one channel: give 1-D samples", command="playAudio")
        content, kind = encode_l16(arr), content_type or "raw"
    if kind not in ("raw", "wav"):
        raise CommandError(f"audioContentType {kind!r} is not raw or wav", command="playAudio")
    data: dict[str, Any] = {
        "audioContent": base64.b64encode(content).decode("ascii"),
        "audioContentType": kind,
        "sampleRate": sample_rate,
    }
    if queue_play is not None:
        data["queuePlay"] = queue_play
    if id is not None:
        data["id"] = id
    return json.dumps({"type": "playAudio", "data": data})


def kill_audio() -> str:
    """Stop what plays now (jambonz runs ``uuid_break``)."""
    return json.dumps({"type": "killAudio"})


def disconnect() -> str:
    """End the listen verb; jambonz closes the audio socket."""
    return json.dumps({"type": "disconnect"})


def mark(name: str) -> str:
    """A marker after the raw audio sent so far; jambonz reports it as a ``mark`` event once that
    audio has played, only in bidirectional streaming (``lws_glue.cpp`` ~301–319, ~993–1043)."""
    if not isinstance(name, str) or not name:
        raise CommandError("a mark needs a non-empty name", command="mark")
    return json.dumps({"type": "mark", "data": {"name": name}})


def clear_marks() -> str:
    """Drop the marks not reached yet; jambonz sends no event for them (``lws_glue.cpp`` ~321–332)."""
    return json.dumps({"type": "clearMarks"})


@dataclass(frozen=True)
class AudioCommand:
    """A command frame the app sent: ``type`` one of :data:`COMMANDS` (or unknown), ``data``."""

    type: str
    data: dict[str, Any]


def parse_command(raw: str | bytes) -> AudioCommand:
    """One app command frame (for the jambonz side)."""
    obj = _json_object(raw, "audio command")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise InvalidFrame("audio command has no type", raw=raw)
    data = obj.get("data")
    if not isinstance(data, dict):
        data = {k: v for k, v in obj.items() if k != "type"}
    return AudioCommand(kind, data)


def decode_play_audio(data: Mapping[str, Any]) -> tuple[Samples, int]:
    """A playAudio's ``data`` as samples ``(channels, n)`` and sample rate."""
    content = data.get("audioContent")
    if not isinstance(content, str):
        raise InvalidFrame("playAudio has no audioContent")
    try:
        blob = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidFrame(f"playAudio audioContent is not base64: {exc}") from None
    kind = data.get("audioContentType", "raw")
    if kind in ("wav", "wave"):  # mod_audio_fork takes both (lws_glue.cpp ~253)
        return from_wav(blob)
    if kind != "raw":
        raise InvalidFrame(f"playAudio audioContentType {kind!r} is not raw, wav or wave")
    rate = data.get("sampleRate", 8000)
    if not isinstance(rate, int) or rate <= 0:
        raise InvalidFrame(f"playAudio sampleRate {rate!r} is not a positive integer")
    return decode_l16(blob, 1), rate
