"""Notebook widgets: a live card per call, a lab panel, a verb composer.

Example::

    import jambonz_lab as jl

    lab = jl.start()
    lab                              # last line of a cell: the lab panel
    session = await lab.wait_for_session()
    session                          # its card (status, verbs, events, Hang up / Mute / Send)
    jl.composer(session)             # build verbs from the SDK's schemas, validate, queue, send
    jl.sources(lab)                  # Kazoo / Basix / Wazo connections, their calls and events

Importing this package (and ``import jambonz_lab``) loads no widget library: ipywidgets
and anywidget are imported by the first :func:`card`, :func:`panel` or :func:`composer`,
so scripts stay widget-free and fast to import.

Threads: call these from a cell or any thread but the lab's loop thread. Widget traits
are written only on the loop thread (see :mod:`jambonz_lab.lab.widgets._hub`).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

from ... import loop

if TYPE_CHECKING:
    from ...net import Session
    from ..runtime import Lab
    from ._card import SessionCard
    from ._composer import VerbComposer
    from ._panel import LabPanel
    from ._sources import SourcesPanel

__all__ = [
    "LabPanel",
    "SessionCard",
    "SourcesPanel",
    "VerbComposer",
    "card",
    "composer",
    "lab_bundle",
    "lab_of",
    "panel",
    "register_display",
    "sources",
]

log = logging.getLogger("jambonz_lab.widgets")


def card(session: Session, lab: Lab | None = None) -> SessionCard:
    """The live card of ``session`` (one per session; every display shows the same card).

    Example::

        c = jl.card(session)
        c.status, c.verbs, c.events[-3:]

    Args:
        session: a session of a lab in this process.
        lab: its lab, when it cannot be found (a lab that was stopped).
    """
    from ._hub import Hub

    hub = Hub.of(lab if lab is not None else lab_of(session))
    return loop.run_sync(hub.session_card, session)


def panel(lab: Lab | None = None) -> LabPanel:
    """The live panel of ``lab`` (default: the default lab): URL, services, counts, recent calls.

    One panel per lab: displaying it twice shows two views of the same widget.
    """
    from ..runtime import default_lab
    from ._hub import Hub

    hub = Hub.of(lab if lab is not None else default_lab())
    return loop.run_sync(hub.get_panel)


def sources(lab: Lab | None = None) -> SourcesPanel:
    """The live widget of ``lab``'s platform sources (default: the default lab): Kazoo, Basix and Wazo
    connections and their state, the platforms' calls (live first), the newest events.

    Example::

        lab.kazoo(url, auth_token=token, account_id=account)
        jl.sources(lab)
    """
    from ..runtime import default_lab
    from ._hub import Hub

    hub = Hub.of(lab if lab is not None else default_lab())
    return loop.run_sync(hub.get_sources)


def composer(session: Session, lab: Lab | None = None, verb: str = "say") -> VerbComposer:
    """A verb composer for ``session`` (a new form each call).

    Example::

        jl.composer(session, verb="gather")
    """
    from ._composer import VerbComposer
    from ._hub import Hub

    found = lab if lab is not None else _find_lab(session)
    hub = Hub.of(found) if found is not None else None
    return VerbComposer(session, hub, verb)


def _find_lab(session: Session) -> Lab | None:
    from ..runtime import lab_for

    return lab_for(session.server)


def lab_of(session: Session) -> Lab:
    """The lab whose server opened ``session``.

    Raises:
        LookupError: no running (or default) lab of this process has it.
    """
    lab = _find_lab(session)
    if lab is None:
        raise LookupError(f"session {session.call_sid} belongs to no running lab; pass lab=")
    return lab


def lab_bundle(lab: Lab, **kwargs: Any) -> Any:
    """``Lab._repr_mimebundle_``: the lab's panel, with the lab's own repr as text (None without widgets)."""
    try:
        widget = panel(lab)
    except ImportError:  # ipywidgets/anywidget missing: IPython falls back to repr()
        return None
    data = widget._repr_mimebundle_(**kwargs)
    if isinstance(data, dict):
        data = {**data, "text/plain": repr(lab)}
    return data


def _session_bundle(session: Session) -> Any:
    """IPython's mimebundle formatter for a Session: its card (None: plain repr)."""
    try:
        return card(session)._repr_mimebundle_()
    except Exception as exc:  # a display must never raise into the cell
        log.warning("cannot show the card of %s: %s: %s", session.call_sid, type(exc).__name__, exc)
        return None


def register_display(shell: Any = None) -> bool:
    """Make IPython show a :class:`~jambonz_lab.Session` as its card. Done at import when IPython runs.

    Args:
        shell: the IPython shell (default: the running one).

    Returns:
        True if registered (False outside IPython).
    """
    if shell is None:
        if "IPython" not in sys.modules:  # never import IPython just to find out
            return False
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return False
    from ...net import Session

    shell.display_formatter.mimebundle_formatter.for_type(Session, _session_bundle)
    return True


def __getattr__(name: str) -> Any:
    """The widget classes, imported on first use."""
    if name == "SessionCard":
        from ._card import SessionCard

        return SessionCard
    if name == "LabPanel":
        from ._panel import LabPanel

        return LabPanel
    if name == "SourcesPanel":
        from ._sources import SourcesPanel

        return SourcesPanel
    if name == "VerbComposer":
        from ._composer import VerbComposer

        return VerbComposer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


try:
    register_display()
except Exception as _exc:  # an odd shell must not break `import jambonz_lab`
    log.debug("no IPython display formatter for sessions: %s", _exc)
