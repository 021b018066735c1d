"""The verb composer: pick a verb, fill its fields (from the SDK's JSON schemas), validate, queue, send.

Example::

    import jambonz_lab as jl

    jl.composer(session)     # a form; or, by hand:
    c = jl.composer(session)
    c.verb.value = "say"
    c.fields["text"].value = "Hello from the composer"
    c.queue_button.click(); c.send_button.click()

Fields are the verb's top-level properties (required ones marked ``*``). A field left
empty is not sent; text of a string-only property is sent as typed, other text is parsed
when it looks like JSON (``2``, ``true``, ``["speech"]``, ``{"vendor": "google"}``). The
raw-JSON box, when filled, is used instead of the fields (one verb object or a list).
Validation is jambonz_lab's (:mod:`jambonz_lab.protocol.verbs`): an error is one line.

Threads: a button click (any kernel thread) reads the form and validates there, then
hands the result to the loop (:func:`jambonz_lab.loop.call_soon`), which calls the
session and writes the feedback: the loop thread is the only writer of the composer's
widgets after it is built.
"""

from __future__ import annotations

import html
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import ipywidgets  # type: ignore[import-untyped]

from ... import loop
from ...exceptions import SessionClosed, VerbError
from ...protocol.verbs import build_verb, normalize_verb, normalize_verbs
from ._schema import Field, parse_value, verb_fields, verb_methods

if TYPE_CHECKING:
    from ...net import Session
    from ._hub import Hub

__all__ = ["VerbComposer"]

log = logging.getLogger("jambonz_lab.widgets")

_WIDE = {"description_width": "12em"}


class VerbComposer(ipywidgets.VBox):  # type: ignore[misc]
    """A form that builds verbs for one session. Get it with :func:`jambonz_lab.composer`.

    Attributes:
        verb: the verb dropdown (the SDK registry's method names).
        fields: the current verb's inputs by property name.
        raw: the raw-JSON escape hatch (used instead of the fields when not empty).
        validate_button, queue_button, send_button: the actions.
        feedback: what the last action said (HTML, escaped); :attr:`message` as plain text.
    """

    def __init__(self, session: Session, hub: Hub | None = None, verb: str = "say") -> None:
        """Built in the caller's thread (before anyone else sees it); use :func:`jambonz_lab.composer`."""
        self.session = session
        self._hub = hub
        names = list(verb_methods())
        self.verb = ipywidgets.Dropdown(
            options=names, value=verb if verb in names else names[0], description="verb", style=_WIDE
        )
        self.doc = ipywidgets.HTML()
        self.doc.add_class("jl-verb-doc")
        self.fields_box = ipywidgets.VBox()
        self.fields_box.add_class("jl-fields")
        self.raw = ipywidgets.Textarea(
            description="raw JSON",
            placeholder='{"verb": "say", "text": "Hello"}  (used instead of the fields when filled)',
            layout=ipywidgets.Layout(width="100%", height="5em"),
            style=_WIDE,
        )
        self.raw.add_class("jl-raw")
        self.validate_button = ipywidgets.Button(description="Validate", tooltip="check, show the wire JSON")
        self.queue_button = ipywidgets.Button(description="Queue", tooltip="session.extend([verb])")
        self.send_button = ipywidgets.Button(
            description="Send", button_style="primary", tooltip="session.send(): the queued verbs"
        )
        for button, cls in (
            (self.validate_button, "jl-validate"),
            (self.queue_button, "jl-queue"),
            (self.send_button, "jl-send"),
        ):
            button.add_class(cls)
        self.queued = ipywidgets.Label()
        self.queued.add_class("jl-queued")
        self.feedback = ipywidgets.HTML()
        self.feedback.add_class("jl-feedback")
        self.message = ""
        self._inputs: dict[str, dict[str, ipywidgets.Text]] = {}
        self._inputs_lock = threading.Lock()
        super().__init__(
            [
                self.verb,
                self.doc,
                self.fields_box,
                self.raw,
                ipywidgets.HBox([self.validate_button, self.queue_button, self.send_button, self.queued]),
                self.feedback,
            ]
        )
        self.add_class("jl-composer")
        self._show_verb(self.verb.value)
        self.queued.value = self._queued_text()
        self.verb.observe(self._on_verb, names="value")
        self.validate_button.on_click(lambda _b: self._click("validate"))
        self.queue_button.on_click(lambda _b: self._click("queue"))
        self.send_button.on_click(lambda _b: self._click("send"))

    # -- the form -------------------------------------------------------------------------

    @property
    def fields(self) -> dict[str, ipywidgets.Text]:
        """The inputs of the selected verb, by property name."""
        return dict(self._field_inputs(str(self.verb.value)))

    def _field_inputs(self, method: str) -> dict[str, ipywidgets.Text]:
        """The inputs of ``method`` (built once per verb and kept, so switching back keeps the text)."""
        with self._inputs_lock:  # the loop (dropdown change) and a cell may both ask first
            inputs = self._inputs.get(method)
            if inputs is None:
                _doc, specs = verb_fields(method)
                inputs = {f.name: self._input(f) for f in specs}
                self._inputs[method] = inputs
            return inputs

    @staticmethod
    def _input(field: Field) -> ipywidgets.Text:
        box = ipywidgets.Text(
            description=field.name + (" *" if field.required else ""),
            placeholder=field.hint,
            tooltip=field.description[:300],
            style=_WIDE,
            layout=ipywidgets.Layout(width="100%"),
        )
        box.add_class("jl-field")
        if field.required:
            box.add_class("jl-required")
        return box

    def _show_verb(self, method: str) -> None:
        doc, _specs = verb_fields(method)
        inputs = self._field_inputs(method)
        self.doc.value = f"<small>{html.escape(doc)}</small>"
        self.fields_box.children = tuple(inputs.values())

    def _on_verb(self, change: dict[str, Any]) -> None:
        """The dropdown changed (any thread): show the new verb's fields, from the loop."""
        loop.call_soon(self._show_verb, str(change["new"]))

    def compose(self) -> list[dict[str, Any]]:
        """The verbs the form describes, validated, as they go on the wire. Any thread (reads only).

        Raises:
            VerbError: one line saying what is wrong.
        """
        raw = self.raw.value.strip()
        if raw:
            try:
                value = json.loads(raw)
            except ValueError as exc:
                raise VerbError(f"raw JSON does not parse: {exc}", verb="?") from None
            if isinstance(value, list):
                return normalize_verbs(value)
            return [normalize_verb(value)]
        method = str(self.verb.value)
        _doc, specs = verb_fields(method)
        inputs = self._field_inputs(method)
        props = {
            f.name: parse_value(inputs[f.name].value, f.types) for f in specs if inputs[f.name].value.strip()
        }
        return [build_verb(method, props)]

    # -- actions --------------------------------------------------------------------------

    def _click(self, action: str) -> None:
        """A button (any thread): validate here, quickly; act and report on the loop."""
        try:
            verbs = self.compose() if action != "send" else []
        except VerbError as exc:
            loop.call_soon(self._report, action, None, exc)
            return
        loop.call_soon(self._act, action, verbs)

    def _act(self, action: str, verbs: list[dict[str, Any]]) -> None:
        """Run an action on the loop thread and write its feedback."""
        loop.require_loop_thread()
        try:
            if action == "validate":
                text = json.dumps(verbs, indent=2, ensure_ascii=False)
            elif action == "queue":
                self._check_open()
                self.session.extend(verbs)
                text = f"queued {', '.join(v['verb'] for v in verbs)}"
            else:
                self._check_open()
                n = len(self.session.queued)
                if n == 0:
                    raise RuntimeError("nothing queued: Queue a verb first")
                self.session.send()
                text = f"sent {n} verb(s)"
        except Exception as exc:  # reported in the form and the log, never raised on the loop
            self._report(action, None, exc)
        else:
            self._report(action, text, None)

    def _check_open(self) -> None:
        """Queue and Send refuse alike on an ended call (Send's own error, before anything queues)."""
        if self.session.closed:
            raise SessionClosed(
                f"call {self.session.call_sid} has ended; nothing more can be sent on it",
                call_sid=self.session.call_sid,
            )

    def _report(self, action: str, text: str | None, exc: BaseException | None) -> None:
        """Write the feedback (loop thread)."""
        loop.require_loop_thread()
        if exc is not None:
            if not isinstance(exc, VerbError):
                log.warning("composer on call %s: %s failed: %s", self.session.call_sid, action, exc)
            self.message = str(exc) if isinstance(exc, VerbError) else f"{action}: {exc}"
            value = f'<span class="jl-error">{html.escape(self.message)}</span>'
        else:
            self.message = text or ""
            tag = "pre" if action == "validate" else "span"
            value = f'<{tag} class="jl-ok">{html.escape(self.message)}</{tag}>'
        self.feedback.value = value
        self.queued.value = self._queued_text()
        if self._hub is not None:
            self._hub.touch(self.session.call_sid)

    def _queued_text(self) -> str:
        return f"{len(self.session.queued)} queued"

    def __repr__(self) -> str:
        return f"<VerbComposer {self.session.call_sid} {self.verb.value}>"
