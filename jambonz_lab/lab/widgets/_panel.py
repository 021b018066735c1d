"""The lab panel: the URL to give jambonz, the services, the counts, a compact call list, one card.

Example::

    import jambonz_lab as jl

    lab = jl.start()
    lab                  # the last line of a cell: shows this panel (or jl.panel(lab))

The panel is an ipywidgets ``VBox`` (class ``jl-panel``) holding a :class:`PanelHeader`
anywidget (``panel.js`` / ``panel.css``), at most one :class:`~.card.SessionCard`, and the
platform sources widget once the lab watches Kazoo, Basix or Wazo. The header lists the
newest calls (at most ``PANEL_SIZE``, newest first, in a box that scrolls: status, caller,
duration on the call's clock, latest event); a click on a row opens that call's card below
the list (one at a time, with a close button); ``p.open_card(call_sid)`` does the same from a
cell. Older calls are in ``lab.calls``. Everything in it is written on the lab's loop
thread by the lab's widget hub, at most every 150 ms.
"""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING, Any

import anywidget
import ipywidgets  # type: ignore[import-untyped]
import traitlets

from ... import loop
from ._assets import asset, common_js
from ._card import SessionCard, with_static_html

if TYPE_CHECKING:
    from ._hub import Hub
    from ._sources import SourcesPanel

__all__ = ["LabPanel", "PanelHeader"]

log = logging.getLogger("jambonz_lab.widgets")


class PanelHeader(anywidget.AnyWidget):
    """The top of the lab panel; its traits are the panel's state (loop thread writes them).

    Attributes:
        url: ``ws://host:port`` (append a service path for jambonz's call hook).
        running: the lab listens.
        services: ``[{"path", "url"}]``, one per declared service.
        calls, live, errors: how many calls the lab has seen, how many are live,
            how many errors were logged.
        sessions: the newest calls, newest first (at most ``max_rows``):
            ``{call_sid, from, to, caller_name, direction, status, live, hooks, errors,
            duration, clock, last}`` (``duration``: seconds on the call's ``clock``; ``last``:
            its latest event, one line).
        opened: the call whose card the panel shows below the list ("" for none).
        max_rows: the most rows the list holds.

    A row click arrives as ``{"action": "open", "call_sid": ...}``, the close button as
    ``{"action": "close"}`` (custom messages, any comm thread); both are handed to the loop.
    """

    _esm = asset("panel.js")
    _css = asset("panel.css")
    _common = common_js()

    url = traitlets.Unicode("").tag(sync=True)
    running = traitlets.Bool(False).tag(sync=True)
    services = traitlets.List(traitlets.Dict()).tag(sync=True)
    calls = traitlets.Int(0).tag(sync=True)
    live = traitlets.Int(0).tag(sync=True)
    errors = traitlets.Int(0).tag(sync=True)
    sessions = traitlets.List(traitlets.Dict()).tag(sync=True)
    opened = traitlets.Unicode("").tag(sync=True)
    max_rows = traitlets.Int(0).tag(sync=True)

    def __init__(self, hub: Hub | None = None, **state: Any) -> None:
        super().__init__(**state)
        self._hub = hub
        self.on_msg(self._on_custom)

    def _on_custom(self, _widget: Any, content: Any, _buffers: Any) -> None:
        """A row click or the close button (any comm thread): hand it to the loop."""
        if self._hub is None or not isinstance(content, dict):
            return
        action, sid = content.get("action"), content.get("call_sid")
        if action == "open" and isinstance(sid, str) and sid:
            loop.call_soon(self._hub.open_card, sid)
        elif action == "close":
            loop.call_soon(self._hub.open_card, None)
        else:
            log.warning("lab panel: unknown message %.80r", content)

    def __repr__(self) -> str:
        return f"<PanelHeader {self.url} calls={self.calls} live={self.live} errors={self.errors}>"


class LabPanel(ipywidgets.VBox):  # type: ignore[misc]
    """The lab at a glance, live. Get it with :func:`jambonz_lab.panel` or by displaying the lab.

    Read its state from any thread through the properties (``url``, ``services``,
    ``calls``, ``live``, ``errors``, ``sessions``, ``cards``); the loop thread is the
    only writer.

    Example::

        p = jl.panel(lab)
        p.url, p.calls, p.live, p.errors
        p.cards[0].status          # the newest call's card
    """

    def __init__(self, hub: Hub, **header: Any) -> None:
        """Built by the widget hub on the loop thread; use :func:`jambonz_lab.panel`."""
        self.header = PanelHeader(hub, **header)
        self.cards_box = ipywidgets.VBox(layout=ipywidgets.Layout(width="100%"))
        self.cards_box.add_class("jl-cards")
        super().__init__([self.header, self.cards_box], layout=ipywidgets.Layout(width="100%"))
        self.add_class("jl-panel")
        self._hub = hub
        #: the platform sources widget shown in the panel, once the lab watches a platform
        self.sources: SourcesPanel | None = None

    # -- state (any thread reads) ---------------------------------------------------------

    @property
    def url(self) -> str:
        return str(self.header.url)

    @property
    def services(self) -> list[dict[str, Any]]:
        return list(self.header.services)

    @property
    def calls(self) -> int:
        return int(self.header.calls)

    @property
    def live(self) -> int:
        return int(self.header.live)

    @property
    def errors(self) -> int:
        return int(self.header.errors)

    @property
    def sessions(self) -> list[dict[str, Any]]:
        return list(self.header.sessions)

    @property
    def cards(self) -> list[SessionCard]:
        """The card shown below the list (none, or the one opened)."""
        return list(self.cards_box.children)

    @property
    def opened(self) -> str:
        """The call whose card is open ("" for none)."""
        return str(self.header.opened)

    def open_card(self, call_sid: str | None) -> None:
        """Open ``call_sid``'s card below the list (what a row click does); None closes it.

        Any thread; returns at once (the card shows at the hub's next flush). A call out of
        the list's window is opened too (its card is built from the log).
        """
        loop.call_soon(self._hub.open_card, call_sid)

    @property
    def closed(self) -> bool:
        return self.comm is None

    # -- loop side ------------------------------------------------------------------------

    def apply(self, header: dict[str, Any], cards: list[SessionCard]) -> None:
        """Write what changed (loop thread): the header's traits in one message, then the cards."""
        loop.require_loop_thread()
        changed = {k: v for k, v in header.items() if getattr(self.header, k) != v}
        if changed:
            with self.header.hold_sync():
                for key, value in changed.items():
                    setattr(self.header, key, value)
        if tuple(cards) != tuple(self.cards_box.children):
            self.cards_box.children = tuple(cards)

    def show_sources(self, sources: SourcesPanel) -> None:
        """Show the lab's platform sources widget below the call list and its open card (loop thread)."""
        loop.require_loop_thread()
        if self.sources is not sources:
            self.sources = sources
            self.children = (self.header, self.cards_box, sources)

    def close(self) -> None:
        """Close the panel and its header (cards stay: they belong to their sessions)."""
        self.header.close()
        self.cards_box.close()
        super().close()

    # -- display --------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return with_static_html(super()._repr_mimebundle_(**kwargs), self._static_html())

    def _static_html(self) -> str:
        """What viewers without widget support show: escaped text only."""
        e = html.escape
        rows = "".join(
            f"<li><code>{e(str(s.get('call_sid', ''))[:8])}</code> {e(str(s.get('status') or '…'))} "
            f"{e(str(s.get('from') or '?'))} → {e(str(s.get('to') or '?'))}</li>"
            for s in self.header.sessions
        )
        return (
            f'<div class="jl-static-panel">jambonz call hook: <code>{e(self.url)}</code>'
            f"<br>calls {self.calls} · live {self.live} · errors {self.errors}<ul>{rows}</ul></div>"
        )

    def __repr__(self) -> str:
        return f"<LabPanel {self.url} calls={self.calls} live={self.live} errors={self.errors}>"
