"""The pytest plugin (entry point ``jambonz_lab``): fixtures to test jambonz apps.

Fixtures, each inert until a test asks for it:

* ``jambonz_lab``: a started :class:`~jambonz_lab.Lab` on a free loopback port, stopped at
  teardown. Scope ``function``, or the ini option ``jambonz_lab_scope`` (``module``, ``session``).
  It serves the services declared with :func:`jambonz_lab.service` when your app was imported,
  and runs the app files a ``@pytest.mark.jambonz_app("app.py", ...)`` marker names.
* ``jambonz_sim``: a :class:`~jambonz_lab.testing.LabSim` bound to that lab:
  ``jambonz_sim.call("/path" or URL, caller=...)`` returns a :class:`~jambonz_lab.sim.CallResult`.
* ``jambonz_caller``: :func:`~jambonz_lab.testing.make_caller`, a caller from steps.

When a test that placed calls fails on something else than our assertions (which print it
themselves), the report gets a "jambonz calls" section with each call's transcript and hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .asserts import CallAssertionError, format_call
from .calls import LabSim, make_caller

if TYPE_CHECKING:
    from ..lab import Lab
    from ..net import Service

__all__ = [
    "jambonz_caller",
    "jambonz_lab",
    "jambonz_sim",
    "pytest_addoption",
    "pytest_configure",
    "pytest_runtest_makereport",
]

SIMS = pytest.StashKey[list[LabSim]]()
DECLARED = pytest.StashKey[dict[str, "Service"]]()
SCOPES = ("function", "class", "module", "package", "session")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "jambonz_lab_scope", "scope of the jambonz_lab fixture (default: function)", default="function"
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "jambonz_app(*paths): app files the jambonz_lab fixture runs once started"
    )


def _scope(fixture_name: str, config: pytest.Config) -> Any:
    scope = str(config.getini("jambonz_lab_scope"))
    if scope not in SCOPES:
        raise pytest.UsageError(f"jambonz_lab_scope = {scope!r}: use one of {', '.join(SCOPES)}")
    return scope


def _declared(config: pytest.Config) -> dict[str, Service]:
    """Services declared on the unstarted default lab (an app imported at collection), kept for every lab."""
    import jambonz_lab as jl

    declared = config.stash.setdefault(DECLARED, {})
    default = jl.default_lab()
    if default.state is jl.LabState.NEW:
        declared.update(default.server.services)
    return declared


@pytest.fixture(scope=_scope)
def jambonz_lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    """A started lab on a free loopback port; stopped at teardown."""
    import runpy

    import jambonz_lab as jl
    from jambonz_lab import loop

    declared = dict(_declared(request.config))
    lab = jl.start(replace=False)  # a module/session lab must outlive a test's own jl.start()
    try:
        missing = {path: svc for path, svc in declared.items() if path not in lab.server.services}
        if missing:
            loop.run_sync(lab.server.services.update, missing)
        for marker in request.node.iter_markers("jambonz_app"):
            for path in marker.args:
                runpy.run_path(str(Path(path)), run_name="__jambonz_lab__")
        yield lab
    finally:
        lab.stop()


@pytest.fixture
def jambonz_sim(jambonz_lab: Lab, request: pytest.FixtureRequest) -> LabSim:
    """The simulated jambonz of this test, bound to ``jambonz_lab``."""
    sim = LabSim(jambonz_lab)
    request.node.stash.setdefault(SIMS, []).append(sim)
    return sim


@pytest.fixture
def jambonz_caller() -> Callable[..., Any]:
    """Build a :class:`~jambonz_lab.sim.Caller` from steps: ``jambonz_caller("hi", ("dtmf", "1#"), None)``."""
    return make_caller


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    sims = item.stash.get(SIMS, [])
    if report.failed and sims and not (call.excinfo and isinstance(call.excinfo.value, CallAssertionError)):
        calls = [format_call(result) for sim in sims for result in sim.results]
        if calls:
            report.sections.append(("jambonz calls", "\n\n".join(calls)))
    return report
