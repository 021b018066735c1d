"""Call recording as jambonz 0.9.8 runs it: the ``record`` command and ``config.record``.

Both end in ``CallSession.notifyRecordOptions`` (``lib/session/call-session.js``
~771–866), and nothing of it reaches the app's socket: no hook, no status, no
``has_recording`` in the call info (``call-info.js`` ~135). So the simulator
keeps the recording's state and writes each step as a ``record`` note (an
``ignored`` one for what jambonz only logs), which tests and notebooks can read.

SIPREC (``type`` absent or ``"siprec"``), the default
    A SIP INFO to the SBC per action, ``X-Reason`` naming it (~868–965; the
    start carries ``X-Srs-Url`` and ``X-Srs-Recording-ID``). The simulated SBC
    answers 200, so the state moves: off → on (start), on → paused (pause),
    paused → on (resume), on or paused → off (stop). An action that does not
    fit the state is ignored (~830–849). Before the answer only a start is
    kept, and sent once the call is answered (~821–826, ~2726).
cloud (``type: "cloud"``)
    A background ``listen`` to the account's recording service, with no hook
    (``background-task-manager.js`` ~137–155); before the answer, the start
    waits for it (``record_all_calls``, ~798–808). Pause and resume need it
    running.

An unknown action throws in jambonz after the state checks (~862); the
``record`` command does not await it (~2325), so the app hears nothing.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .context import VerbContext

__all__ = ["Recording"]

ACTIONS = ("startCallRecording", "stopCallRecording", "pauseCallRecording", "resumeCallRecording")


class State(enum.Enum):
    OFF = "off"
    ON = "on"
    PAUSED = "paused"


#: SIPREC: the states an action may start from, and where the SBC's 200 takes it
SIPREC = {
    "startCallRecording": ((State.OFF,), State.ON),
    "stopCallRecording": ((State.ON, State.PAUSED), State.OFF),
    "pauseCallRecording": ((State.ON,), State.PAUSED),
    "resumeCallRecording": ((State.PAUSED,), State.ON),
}


class Recording:
    """One call's recording. Loop thread only (it runs inside the simulated call).

    Example::

        call.recording.apply(call, {"action": "startCallRecording", "siprecServerURL": "sip:srs@x"})
        call.recording.state  # State.ON once the call is answered
    """

    def __init__(self) -> None:
        self.state = State.OFF
        self.cloud = False  # a cloud recording task is running (or waits for the answer)
        self.cloud_waits = False  # started before the answer (record_all_calls)
        self.pending: dict[str, Any] | None = None  # a SIPREC start saved before the answer

    def apply(self, call: VerbContext, opts: Any) -> None:
        """An action from the ``record`` command or ``config.record``."""
        if not isinstance(opts, dict):
            call.note("ignored", f"record: {opts!r} is not an object; jambonz throws (logged only)")
            return
        action = opts.get("action")
        if opts.get("type") == "cloud":
            self._cloud(call, action)
        else:
            self._siprec(call, action, opts)

    def answered(self, call: VerbContext) -> None:
        """The call was answered: a SIPREC start saved before it goes out now (~2726)."""
        if self.pending is not None and self.state is State.OFF:
            opts, self.pending = self.pending, None
            self._send(call, "startCallRecording", opts)
        if self.cloud_waits:
            self.cloud_waits = False
            call.note("record", "cloud recording starts with the answer")

    def _siprec(self, call: VerbContext, action: Any, opts: dict[str, Any]) -> None:
        if not call.answered:
            if action == "startCallRecording":
                self.pending = opts
                call.note("record", "startCallRecording before the answer: saved, sent when answered")
            else:
                call.note("ignored", f"record: {action} before the answer does nothing (logged only)")
            return
        rule = SIPREC.get(action) if isinstance(action, str) else None
        if rule is None:
            call.note(
                "ignored", f"record: invalid action {action!r}; jambonz throws, unawaited (logged only)"
            )
        elif self.state not in rule[0]:
            call.note(
                "ignored", f"record: {action} while recording is {self.state.value}; ignored (logged only)"
            )
        else:
            self._send(call, action, opts)

    def _send(self, call: VerbContext, action: str, opts: dict[str, Any]) -> None:
        headers = f"X-Reason: {action}"
        if action == "startCallRecording":
            headers += (
                f", X-Srs-Url: {opts.get('siprecServerURL')}, X-Srs-Recording-ID: {opts.get('recordingID')}"
            )
        self.state = SIPREC[action][1]
        call.note("record", f"SIP INFO to the SBC ({headers}); 200 OK, recording {self.state.value}")

    def _cloud(self, call: VerbContext, action: Any) -> None:
        if action == "startCallRecording":
            if self.cloud:
                call.note("ignored", "record: cloud recording already runs; ignored")
                return
            self.cloud = True
            self.cloud_waits = not call.answered
            when = "now" if call.answered else "when the call is answered"
            call.note(
                "record", f"cloud recording: a background listen to the recording service starts {when}"
            )
        elif action in ("stopCallRecording", "pauseCallRecording", "resumeCallRecording"):
            if not self.cloud:
                call.note("ignored", f"record: {action} with no cloud recording running; ignored")
            elif action == "stopCallRecording":
                self.cloud = self.cloud_waits = False
                call.note("record", "cloud recording stopped")
            else:
                call.note("record", f"cloud recording: {action.removesuffix('CallRecording')} the listen")
        else:
            call.note("ignored", f"record: invalid cloud action {action!r}; nothing happens")
