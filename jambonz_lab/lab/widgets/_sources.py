"""The platform sources widget: Kazoo, Basix and Wazo connections, their live calls, their newest events.

Example::

    import jambonz_lab as jl

    lab = jl.start()
    lab.kazoo("ws://127.0.0.1:5555", auth_token=token, account_id=account)
    jl.sources(lab)          # live: one line per connection, the platforms' calls, the newest events

An anywidget (``sources.js`` / ``sources.css``, root class ``jl-sources``) whose traits are
written only on the lab's loop thread, by the lab's widget hub, at most every 150 ms.
Caller-controlled values (numbers, names) are set with ``textContent``.
"""

from __future__ import annotations

import html
from typing import Any

import anywidget
import traitlets

from ... import loop
from ._assets import asset, common_js
from ._card import with_static_html

__all__ = ["SourcesPanel"]


class SourcesPanel(anywidget.AnyWidget):
    """Live view of the lab's platform event sources. Get it with :func:`jambonz_lab.sources`.

    Attributes (read from any thread; the loop thread writes them):
        connections: ``[{source, path, state, events, errors, note}]``, one per client or
            webhook receiver; ``state`` is open, reconnecting, closed, failed or receiving.
        calls: ``[{source, call_id, from, to, status, last, live}]``, live calls first.
        events: the newest events, newest first: ``[{time, source, dir, type, call, detail}]``.
        live: how many platform calls are live.
    """

    _esm = asset("sources.js")
    _css = asset("sources.css")
    _common = common_js()

    connections = traitlets.List(traitlets.Dict()).tag(sync=True)
    calls = traitlets.List(traitlets.Dict()).tag(sync=True)
    events = traitlets.List(traitlets.Dict()).tag(sync=True)
    live = traitlets.Int(0).tag(sync=True)

    @property
    def closed(self) -> bool:
        return self.comm is None

    def apply(self, state: dict[str, Any]) -> None:
        """Write what changed in one message (loop thread)."""
        loop.require_loop_thread()
        changed = {k: v for k, v in state.items() if getattr(self, k) != v}
        if changed:
            with self.hold_sync():
                for key, value in changed.items():
                    setattr(self, key, value)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return with_static_html(super()._repr_mimebundle_(**kwargs), self._static_html())

    def _static_html(self) -> str:
        """What viewers without widget support show: escaped text only."""
        e = html.escape
        lines = "".join(
            f"<li>{e(str(c['source']))} <code>{e(str(c['path']))}</code> {e(str(c['state']))}: "
            f"{c['events']} events, {c['errors']} errors</li>"
            for c in self.connections
        )
        return (
            f'<div class="jl-static-sources">platform sources · live calls {self.live}<ul>{lines}</ul></div>'
        )

    def __repr__(self) -> str:
        return (
            f"<SourcesPanel {len(self.connections)} source(s), live={self.live}, {len(self.events)} event(s)>"
        )
