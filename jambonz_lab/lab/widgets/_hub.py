"""The widget hub of a lab: call models fed by ``lab.subscribe``, cards and the panel, flushed in batches.

One :class:`Hub` per lab, created at the first ``card()`` / ``panel()``. It subscribes once
to the lab's event log (rows arrive on the loop thread), keeps a :class:`CallModel` per
recent call, marks what changed, and at most every :data:`FLUSH_EVERY` seconds writes the
changes into the widgets inside ``hold_sync()`` — so several traits leave in one message,
and the loop thread is the only writer of every widget trait (notebook-design A.5, B.2).

A card whose call has an open listen/stream socket is marked again at each flush, so its level
meter (:func:`audio_state`, from ``AudioStream.levels()``) moves at the flush rate while audio
flows; the stream's ``audio:close`` row brings the last, ``ended``, reading. Audio frames themselves
make no rows and no work here.

Bounded everywhere: models and panel rows for the newest :data:`PANEL_SIZE` calls (plus
the calls whose card you asked for with ``card()`` or opened in the panel), one card in the
panel (opened from its list), event tails of 20.

Threads: every method here runs on the loop thread, except :meth:`Hub.of`, which any
thread but the loop's may call.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ... import loop
from ...protocol.messages import FINAL_STATUSES
from ...records import Row
from ..runtime import LabState
from ._model import CallModel, is_error
from ._sources_model import SourcesModel

if TYPE_CHECKING:
    from ...net import Session
    from ..runtime import Lab
    from ._card import SessionCard
    from ._panel import LabPanel
    from ._sources import SourcesPanel

__all__ = ["FLUSH_EVERY", "LIVE_AUDIO", "PANEL_SIZE", "Hub", "audio_state"]

log = logging.getLogger("jambonz_lab.widgets")

#: seconds between two widget flushes, at most
FLUSH_EVERY = 0.15
#: calls listed in the panel, newest first
PANEL_SIZE = 20
#: a card's audio states that are read again at every flush (the level meter moves)
LIVE_AUDIO = frozenset({"flowing", "idle"})

_ATTR = "_jambonz_lab_widget_hub"


class Hub:
    """Models, cards and the panel of one lab (loop thread)."""

    def __init__(self, lab: Lab) -> None:
        loop.require_loop_thread()
        self.lab = lab
        self.models: OrderedDict[str, CallModel] = OrderedDict()
        self.cards: dict[str, SessionCard] = {}
        self.panel: LabPanel | None = None
        self.sources = SourcesModel()
        self.sources_panel: SourcesPanel | None = None
        self._sources_dirty = False
        self.errors = 0
        self._dirty: set[str] = set()
        self._panel_dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_flush = -1.0
        self._to_close: list[SessionCard] = []
        #: the call whose card the panel shows (None: none)
        self.opened: str | None = None
        self._seed()
        self.unsubscribe = lab.subscribe(self._on_row)  # on the loop thread: a plain append
        lab.on_stop(self._on_stop)
        if lab.state is LabState.STOPPED:
            self.sources.lab_stopped()

    @classmethod
    def of(cls, lab: Lab) -> Hub:
        """The lab's hub, created (and subscribed) at first use. Any thread but the loop's is best."""

        def get() -> Hub:
            hub = getattr(lab, _ATTR, None)
            if not isinstance(hub, Hub):
                hub = cls(lab)
                setattr(lab, _ATTR, hub)
            return hub

        return loop.run_sync(get)

    def _seed(self) -> None:
        """Models of the newest calls, and the error count, from the rows logged so far."""
        rows = self.lab.log.select()  # the raw rows: no JSON parsing for other calls' rows
        sessions = self.lab.server.sessions
        for sid in list(sessions)[-PANEL_SIZE:]:
            self.models[sid] = CallModel(sid)
        for row in rows:
            if row.source != "jambonz":
                self.sources.apply(row)
                continue
            if is_error(row.direction, row.type):
                self.errors += 1
            model = self.models.get(row.call_sid) if row.call_sid is not None else None
            if model is not None:
                model.apply(row)

    # -- rows in ------------------------------------------------------------------------

    def _on_row(self, row: Row) -> None:
        """One event-log row (loop thread, via lab.subscribe): update a model, mark it dirty."""
        if row.source != "jambonz":  # platform events have their own widget
            self.sources.apply(row)
            self._sources_dirty = True
            self._schedule()
            return
        sid = row.call_sid
        if is_error(row.direction, row.type):
            self.errors += 1
            self._panel_dirty = True
        model = self.models.get(sid) if isinstance(sid, str) else None
        if model is None and isinstance(sid, str) and sid not in self.lab.server.sessions:
            model = self.models[sid] = CallModel(sid)  # a new call (its first row comes before its session)
            self._evict()
        if model is not None and sid is not None:
            model.apply(row)
            self._dirty.add(sid)
            self._panel_dirty = True
        if self._dirty or self._panel_dirty:
            self._schedule()

    def _on_stop(self) -> None:
        """The lab stopped (loop thread): the panel says so, the sources show nothing live."""
        self.sources.lab_stopped()
        self._sources_dirty = True
        self._panel_dirty = True
        self._dirty.update(self.cards)  # a card's live flag and buttons follow its session
        self._schedule()

    def touch(self, call_sid: str | None = None) -> None:
        """Mark a card (or only the panel) for the next flush, e.g. after a queue change."""
        if call_sid is not None:
            self._dirty.add(call_sid)
        self._panel_dirty = True
        self._schedule()

    def _evict(self) -> None:
        """Drop the oldest calls beyond the panel's window, except those with a pinned card."""
        excess = len(self.models) - PANEL_SIZE
        if excess <= 0:
            return
        for sid in list(self.models)[:excess]:
            card = self.cards.get(sid)
            if sid == self.opened or (card is not None and card.pinned and not card.closed):
                continue
            del self.models[sid]
            self._dirty.discard(sid)
            if card is not None:
                del self.cards[sid]
                self._to_close.append(card)  # after the panel stopped showing it

    # -- flushing -----------------------------------------------------------------------

    def _schedule(self) -> None:
        if self._timer is not None:
            return
        running = loop.get_loop()
        delay = max(0.0, self._last_flush + FLUSH_EVERY - running.time())
        self._timer = loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        """Write every change since the last flush into the widgets (loop thread)."""
        self._timer = None
        self._last_flush = loop.get_loop().time()
        dirty, self._dirty = self._dirty, set()
        metering: set[str] = set()  # cards whose call's audio is open: read again next flush
        try:
            for sid in dirty:
                card = self.cards.get(sid)
                model = self.models.get(sid)
                if card is None or model is None:
                    continue
                if card.closed:
                    del self.cards[sid]
                    continue
                state = self._card_state(model, card)
                card.apply(state)
                if state["audio_state"] in LIVE_AUDIO:
                    metering.add(sid)
            if self._sources_dirty:
                self._sources_dirty = False
                # the lab panel shows them too, once there is a platform (not for a mere lab.stop())
                if self.sources.connections and self.panel is not None and not self.panel.closed:
                    self.panel.show_sources(self.get_sources())
                sources = self.sources_panel
                if sources is not None and sources.closed:
                    self.sources_panel = sources = None
                if sources is not None:
                    sources.apply(self.sources.state())
            if self._panel_dirty:
                self._panel_dirty = False
                panel = self.panel
                if panel is not None and panel.closed:
                    self.panel = panel = None
                if panel is not None:
                    panel.apply(self._panel_state(), self._panel_cards())
        except Exception:  # a widget failure must not stop the loop
            log.exception("widget update failed")
        finally:
            closing, self._to_close = self._to_close, []
            for card in closing:
                if self.panel is None or card not in self.panel.cards:
                    card.close()
            if metering:
                self._dirty |= metering
                self._schedule()

    def _card_state(self, model: CallModel, card: SessionCard | None = None) -> dict[str, Any]:
        state = model.state()
        session = self.lab.server.sessions.get(model.call_sid)
        if card is not None and session is not None:
            card.rebind(session)  # a redirect opens a new session object for the same call
        state["live"] = self.lab.running and session is not None and not session.closed  # stopped: none
        state["state"] = session.state.value if session is not None else ""
        state["queued"] = len(session.queued) if session is not None else 0
        state.update(audio_state(session))
        return state

    def _panel_state(self) -> dict[str, Any]:
        sessions = self.lab.server.sessions
        running = bool(self.lab.running)  # a stopped lab serves no call, whatever jambonz does next
        newest = list(self.models.values())[-PANEL_SIZE:][::-1]
        listed = []
        for model in newest:
            row = model.summary()
            session = sessions.get(model.call_sid)
            row["live"] = running and session is not None and not session.closed
            if session is not None and session.closed and row["status"] not in FINAL_STATUSES:
                row["status"] = "closed"  # the socket closed before a final status: not in progress
            listed.append(row)
        url = self.lab.url
        return {
            "url": url,
            "running": running,
            "services": [{"path": p, "url": url + p} for p in self.lab.server.services],
            "calls": len(sessions),
            "live": sum(1 for s in sessions.values() if not s.closed) if running else 0,
            "errors": self.errors,
            "sessions": listed,
            "opened": self.opened or "",
            "max_rows": PANEL_SIZE,
        }

    def _panel_cards(self) -> list[SessionCard]:
        return [self.card(self.opened)] if self.opened is not None else []

    def open_card(self, call_sid: str | None) -> None:
        """Show ``call_sid``'s card in the panel, in place of the one open (None: close it); loop thread."""
        loop.require_loop_thread()
        if call_sid == self.opened:
            return
        previous, self.opened = self.opened, call_sid
        if previous is not None:
            card = self.cards.get(previous)
            if card is not None and not card.pinned:  # a card nobody asked for: closed, not kept
                del self.cards[previous]
                self._to_close.append(card)
        if call_sid is not None:
            if call_sid not in self.models and call_sid not in self.lab.server.sessions:
                if not self.lab.log.select(call_sid):
                    log.warning("lab panel: no call %.40r in the log; nothing to open", call_sid)
                    self.opened = None
            self._dirty.add(call_sid)
        self._panel_dirty = True
        self._schedule()

    # -- widgets --------------------------------------------------------------------------

    def card(self, call_sid: str, *, pinned: bool = False) -> SessionCard:
        """The call's card, created on first use (loop thread)."""
        from ._card import SessionCard

        card = self.cards.get(call_sid)
        if card is None or card.closed:
            model = self.models.get(call_sid) or self._adopt(call_sid)
            session = self.lab.server.sessions.get(call_sid)
            state = self._card_state(model)
            card = SessionCard(session, self, **state)
            self.cards[call_sid] = card
            if state["audio_state"] in LIVE_AUDIO:  # its meter moves from the next flush on
                self.touch(call_sid)
        if pinned:
            card.pinned = True
        return card

    def _adopt(self, call_sid: str) -> CallModel:
        """A model for an older call (out of the panel's window): built from its logged rows."""
        model = CallModel(call_sid)
        for row in self.lab.log.select(call_sid):  # raw rows: the model parses each payload once
            model.apply(row)
        self.models[call_sid] = model
        self.models.move_to_end(call_sid, last=False)  # keep the panel's newest-first window
        return model

    def get_panel(self) -> LabPanel:
        """The lab's panel, created on first use (loop thread)."""
        from ._panel import LabPanel

        if self.panel is None or self.panel.closed:
            self.panel = LabPanel(self, **self._panel_state())
            self.panel.apply(self._panel_state(), self._panel_cards())
            if self.sources.connections:
                self.panel.show_sources(self.get_sources())
        return self.panel

    def get_sources(self) -> SourcesPanel:
        """The lab's platform sources widget, created on first use (loop thread)."""
        from ._sources import SourcesPanel

        if self.sources_panel is None or self.sources_panel.closed:
            self.sources_panel = SourcesPanel(**self.sources.state())
        return self.sources_panel

    def session_card(self, session: Session) -> SessionCard:
        """The pinned card of ``session`` (loop thread)."""
        return self.card(session.call_sid, pinned=True)


def audio_state(session: Session | None) -> dict[str, Any]:
    """The card's level meter: the newest open audio stream of the call (else its newest one).

    ``audio_state`` is ``""`` (no stream), ``flowing``, ``idle`` or ``ended``; ``audio_labels``
    and ``audio_levels`` (dBFS numbers) go channel by channel.
    """
    streams = session.audio if session is not None else []
    if not streams:
        return {"audio_state": "", "audio_labels": [], "audio_levels": []}
    stream = next((s for s in reversed(streams) if not s.closed), streams[-1])
    levels = stream.levels()
    return {
        "audio_state": levels.state,
        "audio_labels": list(levels.labels),
        "audio_levels": list(levels.dbfs),
    }
