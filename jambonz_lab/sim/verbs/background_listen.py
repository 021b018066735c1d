"""``config.listen``: the background listen of feature-server 0.9.8.

``config`` with a ``listen`` object (``lib/tasks/config.js`` ~84, ~272–280):
``enable`` true starts a listen task with the other keys
(``{verb: "listen", ...opts}``) beside the verb stack; anything else (``enable``
false or absent) stops it. ``lib/utils/background-task-manager.js``:

* ``newTask`` skips a second ``listen`` while one runs (~29–34);
* ``_initListen`` (~82–100) runs the listen task with bugname
  ``jambonz-background-listen``: the same audio socket as the verb
  (:class:`~jambonz_lab.sim.audio_socket.AudioSocket` with ``background=True``:
  its frames are moments of the call, so the stack's own waits stop at each one);
* ``stop`` (~62–71) kills it: the socket closes (``forkAudioStop``) and the task's
  ``exec`` carries on to ``performAction`` (``listen.js`` ~92–94, ~99–121), so its
  actionHook goes with ``dial_call_duration`` — and the ack's verbs replace the
  application (``task.js`` ~254, ``replaceApplication``); the same when it ends by
  itself (``maxLength``, the app's ``disconnect``); then a new one may start (~213–218);
* the call's end stops it with no hook (the simulator cancels it with the call's moments).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..audio_socket import AudioSocket
from ..context import PerCall
from . import amd, runner
from .basic import action_hook

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = ["config", "running"]


@dataclass
class _Listen:
    """The call's background listen slot (the task manager's ``listen``)."""

    socket: AudioSocket | None = None
    task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()


_state = PerCall(_Listen)


def running(call: VerbContext) -> bool:
    """A background listen streams (``call-session.js`` ``isBackGroundListen`` ~201–203)."""
    state = _state.get(call)
    return state is not None and state.running


@runner("config")
async def config(call: VerbContext, verb: dict[str, Any]) -> None:
    """:func:`.amd.config` (amd, bargeIn, ttsStream, the rest), then ``listen`` (``config.js`` ~272–280)."""
    await amd.config(call, verb)
    listen = verb.get("listen")
    if not isinstance(listen, dict) or not listen:  # hasListen: Object.keys(this.listen).length
        return
    opts = {k: v for k, v in listen.items() if k != "enable"}
    if listen.get("enable"):
        start(call, {"verb": "listen", **opts})
    else:
        stop(call)


def start(call: VerbContext, verb: dict[str, Any]) -> None:
    """``startBackgroundTask('listen', opts)``: skipped while one runs."""
    state = _state(call)
    if state.running:
        call.note("listen", "background listen is running; skipped")
        return
    if verb.get("transcribe"):
        call.note("not-simulated", "background listen: its nested transcribe is not simulated")
    socket = AudioSocket(call, verb, background=True)
    call.note("listen", f"background listen to {verb.get('url')} started")
    state.socket = socket
    state.task = asyncio.get_running_loop().create_task(_run(call, verb, socket))


def stop(call: VerbContext) -> None:
    """``stopBackgroundTask('listen')``: the stream is killed; its actionHook still goes."""
    state = _state(call)
    if state.running and state.socket is not None:
        call.note("listen", "background listen stopped")
        state.socket.stop()


async def _run(call: VerbContext, verb: dict[str, Any], socket: AudioSocket) -> None:
    try:
        results = await socket.run()
        await action_hook(call, verb, results, kill=True)
    except asyncio.CancelledError:
        return  # the call ended
    finally:
        socket.release()  # the hook is sent (and acked): the stack goes on
