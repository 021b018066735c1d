"""What the simulated caller does: says, presses, waits, hangs up; how dialled parties answer.

For a REST-originated call (``sim.call(..., direction="outbound")``) the
``Caller`` is the person being called: ``answer`` says how they pick up.

Example::

    caller = Caller(
        inputs=[Speech("I'd like to book a car"), Digits("1234#"), Silence()],
        hangup_after=60,
        dial={"+15551234": DialOutcome("busy")},
    )

Each ``gather`` (or transcribe, or llm turn) takes the next input in order; in a
``conference`` the caller says the rest in turn (its start/stop-talking events).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Audio",
    "Caller",
    "DialOutcome",
    "Digits",
    "Greeting",
    "Hold",
    "Input",
    "LegEvent",
    "Press",
    "Refer",
    "Silence",
    "Speech",
    "Tone",
    "ToolCall",
]


@dataclass(frozen=True)
class Speech:
    """The caller says ``text``: its final transcript comes ``after`` seconds into the gather.

    ``after`` counts call-clock seconds from the start of the verb that takes this input (a
    ``gather``: its start, its prompt included; a ``transcribe``; an ``llm`` turn).

    What a gather reads of it (other verbs take only ``text``, ``after``, ``confidence``):

    * ``interims``: the interim transcripts before the final, the first at ``after``, one every
      ``interval`` s, the final ``interval`` after the last. None: one interim (the first half
      of the words) at ``after``, just before the final. Interims carry confidence 0 (Google's
      "not set"); the final carries ``confidence``.
    * ``error``: the recognizer fails instead of sending the final (a vendor error event
      ``{error}``), after the interims.
    * ``more``: what the caller does next in the same turn (continuous ASR,
      ``recognizer.asrTimeout``): more utterances, or keys (``asrDtmfTerminationDigit``), each
      counted from the end of the one before (its final, or its last key).
    """

    text: str
    after: float = 1.0
    confidence: float = 0.92
    language: str = "en-US"
    interims: tuple[str, ...] | None = None
    interval: float = 0.5
    error: str | None = None
    more: tuple[Speech | Digits, ...] = ()


@dataclass(frozen=True)
class Digits:
    """The caller presses ``digits``: the first key ``after`` seconds, then one every ``interval``.

    ``after`` counts call-clock seconds from the start of the verb that takes this input (a
    ``gather``: its start, so its ``say``/``play`` prompt is included; keys pressed while the
    prompt plays are heard only when the gather listens then, as jambonz's ``dtmfBargein`` /
    ``listenDuringPrompt`` say). In a :class:`Speech`'s ``more``: from the end of the one before.
    """

    digits: str
    after: float = 1.0
    interval: float = 0.3


@dataclass(frozen=True)
class Silence:
    """The caller says nothing: the gather times out."""


@dataclass(frozen=True)
class Tone:
    """A generated tone: ``freq`` Hz (a pair: two tones summed, as DTMF), ``seconds`` long,
    ``amplitude`` a fraction of full scale (``freq`` 0: silence). Rendered by
    :func:`jambonz_lab.sim.audio.render` at the rate it is wanted at."""

    freq: float | tuple[float, float]
    seconds: float
    amplitude: float = 0.3

    @classmethod
    def dtmf(cls, key: str, seconds: float = 0.1, amplitude: float = 0.3) -> Tone:
        """The in-band DTMF tone of ``key`` (``0-9 * # A-D``)."""
        from .audio import dtmf_freqs

        return cls(dtmf_freqs(key), seconds, amplitude)


#: what an :class:`Audio` plays: a WAV path, ``(samples, rate)``, a :class:`Tone`, a float
#: (seconds of silence), or a sequence of these, played back to back
AudioSource = Any


@dataclass(frozen=True)
class Audio:
    """The caller sends this audio into a ``listen`` / ``stream`` (its audio socket).

    ``source``: a WAV file path (16-bit PCM), a 1-D numpy array with ``rate`` (or a
    ``(samples, rate)`` pair), a :class:`Tone`, a float (seconds of silence), or a
    list of these played back to back; resampled (linear) to the stream's rate when
    the rates differ. ``after``: seconds from the start of the stream (from the end of
    the previous Audio, for the next ones a listen takes in a row).
    """

    source: AudioSource
    rate: int | None = None
    after: float = 0.0


Input = Speech | Digits | Silence | Audio

Party = Literal["caller", "callee"]
MACHINE_GREETING = (
    "Hi, you have reached the voicemail of Sam. I can't take your call right now, "
    "please leave a message after the tone"
)


@dataclass(frozen=True)
class Greeting:
    """What a party says when it picks up: what answering machine detection (``amd``) hears.

    Times count from the answer: the words are said from ``start`` for ``seconds``
    (default: the TTS rate of :mod:`~jambonz_lab.sim.verbs.basic`), each word
    one more interim transcript, the final at the end; ``beep`` is a tone
    (a voicemail beep, ``frequency``/``variance`` as avmd reports them).
    ``text=""``: the party says nothing.
    """

    text: str = "Hello?"
    start: float = 0.5
    seconds: float | None = None
    beep: float | None = None
    frequency: int = 1000
    variance: int = 0

    @classmethod
    def machine(
        cls, seconds: float = 4.0, beep: float | None = 4.5, text: str = MACHINE_GREETING
    ) -> Greeting:
        """An answering machine: a long greeting, then (by default) the beep."""
        return cls(text=text, seconds=seconds, beep=beep)


@dataclass(frozen=True)
class Press:
    """During a dial's bridge, ``by`` presses ``digits`` (SIP INFO), from ``at`` s after the bridge.

    They reach the dial's ``dtmfHook`` through ``dtmfCapture`` (see :mod:`jambonz_lab.sim.verbs.legs`).
    """

    digits: str
    at: float = 1.0
    by: Party = "callee"
    interval: float = 0.3


@dataclass(frozen=True)
class Hold:
    """During a dial's bridge, ``by`` puts the call on hold (re-INVITE) at ``at`` s, for ``seconds``.

    With the dial's ``onHoldHook``, its verbs play to the held party until the unhold.
    """

    at: float = 1.0
    seconds: float = 5.0
    by: Party = "callee"


@dataclass(frozen=True)
class Refer:
    """During a dial's bridge, ``by`` transfers the other party to ``to`` (a REFER) at ``at`` s.

    With the dial's ``referHook``: from the callee, the hook's verbs replace the caller's app; from
    the caller, they run on the B-leg, which gets its own socket (``session:adulting``).
    """

    to: str
    at: float = 1.0
    by: Party = "callee"


LegEvent = Press | Hold | Refer


@dataclass(frozen=True)
class DialOutcome:
    """How a dialled party answers.

    Attributes:
        result: ``answer``, ``busy``, ``no-answer`` or ``failed``.
        ring: seconds of ringing before the outcome.
        talk: seconds the answered party stays on before hanging up.
        early_media: ring with SDP (``early-media``) instead of ``ringing``.
        greeting: what the party says on answering, for ``amd`` (None: nothing).
        during: what the parties do while bridged (:class:`Press`, :class:`Hold`, :class:`Refer`).
    """

    result: Literal["answer", "busy", "no-answer", "failed"] = "answer"
    ring: float = 2.0
    talk: float = 10.0
    early_media: bool = False
    greeting: Greeting | None = None
    during: Sequence[LegEvent] = ()


@dataclass(frozen=True)
class ToolCall:
    """A tool call the simulated LLM makes during an ``llm`` verb."""

    name: str
    args: Mapping[str, object] = field(default_factory=dict)


@dataclass
class Caller:
    """A scripted caller (and the world around the call).

    Attributes:
        inputs: what the caller says or presses, one per gather, in order;
            when they run out, gathers time out.
        hangup_after: seconds into the call when the caller hangs up
            (``None``: stays until the app ends the call or ``time_limit``).
        time_limit: the most a call may last (jambonz's timeLimit).
        dial: outcome per dialled number/URI; ``"*"`` for any other.
        tool_calls: tool calls the LLM makes, in order, during ``llm`` verbs.
        name, number: the caller's display name and number (``from``); on an
            outbound call ``number`` is the callee's (``to``).
        answer: outbound (REST-originated) calls only: how this party answers
            jambonz's call — after ``ring`` seconds (default 2) ``answer``, or
            ``busy`` (486), ``no-answer`` (487) or ``failed`` (503), with
            ``early_media`` for a 183 instead of a 180. ``talk`` does not apply:
            the answered call lasts until ``hangup_after`` / ``time_limit``, both
            counted from the INVITE.
        greeting: what this call's party says on answering, for ``amd`` (the
            ``config`` verb's, and a REST call's); None: nothing.
    """

    inputs: list[Input] = field(default_factory=list)
    hangup_after: float | None = None
    time_limit: float = 3600.0
    dial: dict[str, DialOutcome] = field(default_factory=dict)
    tool_calls: list[ToolCall] = field(default_factory=list)
    name: str = "Alice"
    number: str = "+14155550100"
    answer: DialOutcome = field(default_factory=DialOutcome)
    greeting: Greeting | None = None

    @classmethod
    def saying(cls, *texts: str, **kw: object) -> Caller:
        """A caller who says each text in turn."""
        return cls(inputs=[Speech(t) for t in texts], **kw)  # type: ignore[arg-type]

    @classmethod
    def from_steps(cls, steps: Iterable[tuple[str, str]], **kw: object) -> Caller:
        """From ``("speech", text)`` / ``("dtmf", digits)`` / ``("silence", "")`` pairs (the CLI)."""
        inputs: list[Input] = []
        for kind, value in steps:
            if kind == "speech":
                inputs.append(Speech(value))
            elif kind == "dtmf":
                inputs.append(Digits(value))
            elif kind == "silence":
                inputs.append(Silence())
            else:
                raise ValueError(f"unknown caller step {kind!r}: use speech, dtmf or silence")
        return cls(inputs=inputs, **kw)  # type: ignore[arg-type]

    def outcome(self, target: str) -> DialOutcome:
        return self.dial.get(target) or self.dial.get("*") or DialOutcome()
