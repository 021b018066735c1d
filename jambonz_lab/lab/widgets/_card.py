"""The session card: one call's status, verbs, latest events and buttons, live in a notebook.

Example::

    import jambonz_lab as jl

    session = await lab.wait_for_session()
    jl.card(session)          # or just `session` as the last line of a cell

The card is an ``anywidget`` (its ES module and CSS are ``card.js`` / ``card.css`` next
to this file). Its traits are written only on the lab's loop thread, by the lab's widget
hub (:mod:`jambonz_lab.lab.widgets._hub`), at most every 150 ms. Button clicks arrive as
custom messages on whatever thread the kernel uses for comms; they only hand the work to
the loop (:func:`jambonz_lab.loop.call_soon`), which calls the session and reports a
failure in the card's ``error`` trait and in the ``jambonz_lab.widgets`` log.
Clicks are handled while a cell ``await``s, and only after a blocking cell ends
(notebook-design A.2).
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from ... import loop
from ._assets import asset, common_js
from ._model import clock_text

if TYPE_CHECKING:
    from ...net import Session
    from ._hub import Hub

__all__ = ["ACTIONS", "SessionCard"]

log = logging.getLogger("jambonz_lab.widgets")

#: what the card's buttons send (``{"action": ...}`` custom messages)
ACTIONS = ("hangup", "mute", "unmute", "send")


def with_static_html(bundle: Any, text_html: str) -> Any:
    """A widget's mime bundle (a dict, or anywidget's ``(data, metadata)``) with a ``text/html``
    fallback for viewers without widget support (GitHub, nbviewer)."""
    if isinstance(bundle, tuple):
        data, metadata = bundle
        return {**data, "text/html": text_html}, metadata
    if isinstance(bundle, dict):
        return {**bundle, "text/html": text_html}
    return bundle


class SessionCard(anywidget.AnyWidget):
    """One call as a live card: status, who calls, verbs sent, latest events, counters, buttons.

    Get one with :func:`jambonz_lab.card` (one card per session, shared by every display
    and by the lab panel). The traits below are the card's whole state; read them from any
    thread, never write them (the loop thread is their only writer).

    Example::

        c = jl.card(session)
        c.status, c.statuses, c.verbs, c.events[-1]
        c.click("hangup")       # what the Hang-up button does

    Attributes:
        call_sid, from_, to, caller_name, direction: the call (caller-controlled strings
            are data: the front end sets them with ``textContent``).
        status: the latest ``call_status`` of this leg; ``statuses``: its history.
        verbs: names of the verbs sent (acks and redirects), newest last.
        events: the latest events, ``{t, dir, type, hook, detail}``, at most 20; ``t`` is
            seconds on the call's clock (``clock``).
        clock: ``"call"``: a simulated call, ``t`` is its own call time (a ``say`` takes its
            seconds); ``"wall"``: a real call, ``t`` is wall time since its first event.
        hooks, errors: counters over the whole call.
        live: the call's socket is not closed for good; ``state``: the session's state.
        queued: verbs composed but not sent yet (refreshed on each update).
        muted: the last mute button click succeeded with ``mute``.
        error: the last button action's failure (empty after a success).
        audio_state: the call's listen/stream audio: ``""`` (none), ``flowing``, ``idle`` (open,
            no frame lately) or ``ended``; read again at every flush while open.
        audio_labels, audio_levels: the level meter, channel by channel (``caller``, ``app``,
            ``mixed``): RMS in dBFS over the newest 0.1 s, numbers (-90 is silence).
    """

    _esm = asset("card.js")
    _css = asset("card.css")
    _common = common_js()

    call_sid = traitlets.Unicode("").tag(sync=True)
    from_ = traitlets.Unicode("").tag(sync=True)
    to = traitlets.Unicode("").tag(sync=True)
    caller_name = traitlets.Unicode("").tag(sync=True)
    direction = traitlets.Unicode("").tag(sync=True)
    status = traitlets.Unicode("").tag(sync=True)
    statuses = traitlets.List(traitlets.Unicode()).tag(sync=True)
    verbs = traitlets.List(traitlets.Unicode()).tag(sync=True)
    events = traitlets.List(traitlets.Dict()).tag(sync=True)
    clock = traitlets.Unicode("wall").tag(sync=True)
    hooks = traitlets.Int(0).tag(sync=True)
    errors = traitlets.Int(0).tag(sync=True)
    live = traitlets.Bool(False).tag(sync=True)
    state = traitlets.Unicode("").tag(sync=True)
    queued = traitlets.Int(0).tag(sync=True)
    muted = traitlets.Bool(False).tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)
    audio_state = traitlets.Unicode("").tag(sync=True)
    audio_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    audio_levels = traitlets.List(traitlets.Float()).tag(sync=True)

    def __init__(self, session: Session | None, hub: Hub | None = None, **state: Any) -> None:
        """Built by the widget hub on the loop thread; use :func:`jambonz_lab.card`."""
        super().__init__(**state)
        self._session = session
        self._hub = hub
        #: asked for with card(): the panel never closes it when the call scrolls out
        self.pinned = False
        self.on_msg(self._on_custom)

    @property
    def session(self) -> Session | None:
        """The call's session (None for a call that never opened one, e.g. a busy outbound call)."""
        return self._session

    def rebind(self, session: Session) -> None:
        """Follow the call to a new session object (a redirect to a new socket); loop thread."""
        loop.require_loop_thread()
        self._session = session

    @property
    def closed(self) -> bool:
        """The widget was closed (``card.close()``); it no longer updates."""
        return self.comm is None

    # -- front end → kernel ---------------------------------------------------------------

    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """A button click (any thread the kernel dispatches comms on): hand it to the loop."""
        action = content.get("action") if isinstance(content, dict) else None
        loop.call_soon(self._act, action)

    def click(self, action: str) -> None:
        """Do what a button does: ``hangup``, ``mute``, ``unmute`` or ``send``. Any thread.

        Returns at once; the result shows in ``error`` (empty on success) and ``muted``.
        """
        loop.call_soon(self._act, action)

    def _act(self, action: object) -> None:
        """Run a button's action on the loop thread; failures go to ``error`` and the log."""
        loop.require_loop_thread()
        session = self._session
        try:
            if action not in ACTIONS:
                raise ValueError(f"unknown action {action!r}; the card knows {', '.join(ACTIONS)}")
            if session is None:
                raise RuntimeError("this call has no session (it never reached the app)")
            if action == "hangup":
                session.inject_call_status("completed")
            elif action in ("mute", "unmute"):
                session.inject_mute(str(action))
            elif not session.queued:
                raise RuntimeError("nothing queued: compose verbs first (session.say(...) or the composer)")
            else:
                session.send()
        except Exception as exc:  # reported in the card and the log, never raised on the loop
            log.warning("card %s: %s failed: %s: %s", self.call_sid, action, type(exc).__name__, exc)
            self.apply({"error": f"{action}: {exc}"})
        else:
            done: dict[str, Any] = {"error": ""}
            if action in ("mute", "unmute"):
                done["muted"] = action == "mute"
            self.apply(done)
        if self._hub is not None:
            self._hub.touch(self.call_sid)

    # -- loop side ------------------------------------------------------------------------

    def apply(self, state: dict[str, Any]) -> bool:
        """Write the traits that changed, in one message (loop thread). True if any changed."""
        loop.require_loop_thread()
        changed = {k: v for k, v in state.items() if getattr(self, k) != v}
        if not changed:
            return False
        with self.hold_sync():
            for key, value in changed.items():
                setattr(self, key, value)
        return True

    # -- display --------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return with_static_html(super()._repr_mimebundle_(**kwargs), self._static_html())

    def _static_html(self) -> str:
        """What viewers without widget support show (GitHub, nbviewer): escaped text only."""
        e = html.escape
        rows = "".join(
            f"<li>{e(clock_text(float(ev.get('t', 0))))} {e(str(ev.get('dir')))} {e(str(ev.get('type')))} "
            f"{e(str(ev.get('hook') or ''))} {e(str(ev.get('detail') or ''))}</li>"
            for ev in self.events[-5:]
        )
        return (
            f'<div class="jl-static-card"><b>{e(self.status or "…")}</b> '
            f"{e(self.caller_name)} {e(self.from_)} → {e(self.to)} <code>{e(self.call_sid)}</code>"
            f"<br>verbs: {e(', '.join(self.verbs) or '-')} · hooks {self.hooks} · errors {self.errors}"
            f"{self._static_audio()}"
            f"<ul>{rows}</ul></div>"
        )

    def _static_audio(self) -> str:
        if not self.audio_state:
            return ""
        levels = ", ".join(
            f"{html.escape(label)} {float(db):.1f} dBFS"
            for label, db in zip(self.audio_labels, self.audio_levels, strict=False)
        )
        return f"<br>audio {html.escape(self.audio_state)}: {levels}"

    def __repr__(self) -> str:
        return f"<SessionCard {self.call_sid} {self.status or '…'} {self.from_}→{self.to}>"
