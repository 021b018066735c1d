"""The public surface, pinned: a change to what ``jambonz_lab`` exports is a deliberate edit here.

Every module not named ``_private`` declares ``__all__``, and every name in it exists.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import jambonz_lab
from jambonz_lab import sim

TOP = {
    "AlreadyReplied", "CallState", "CommandError", "EventLog", "FrameTooLarge", "InvalidFrame",
    "JambonzLabError", "KazooError", "Lab", "LabState", "Message", "MessageType", "NoPendingHook",
    "NoSocket", "PlatformError", "ProtocolError", "QueryError", "RestError", "ServerError",
    "ServerOptions", "Service", "Session", "SessionClosed", "SignatureError", "SocketClose",
    "TermDecodeError", "VerbError", "WaitTimeout", "Waiter", "WazoClosed", "__version__", "card",
    "composer", "default_lab", "panel", "read_log", "service", "sources", "sql", "start", "stop_all",
}  # fmt: skip
SIM = {
    "Audio", "CallResult", "Caller", "Clock", "DialOutcome", "Digits", "Divergence", "Greeting", "Hold",
    "LoadResults", "Press", "Refer", "ReplayReport", "RestServer", "Silence", "SimCall", "SimOptions",
    "Speech", "Tone", "ToolCall", "TraceEntry", "acall", "areplay", "call", "load", "replay", "serve_rest",
}  # fmt: skip


def public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(jambonz_lab.__path__, "jambonz_lab."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            names.append(info.name)
    return sorted(names)


def test_the_top_level_api_is_pinned() -> None:
    assert set(jambonz_lab.__all__) == TOP
    assert len(jambonz_lab.__all__) == len(TOP)  # no name twice


def test_the_simulator_api_is_pinned() -> None:
    assert set(sim.__all__) == SIM


@pytest.mark.parametrize("name", public_modules())
def test_every_public_module_declares_what_it_exports(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names what it does not define: {missing}"
