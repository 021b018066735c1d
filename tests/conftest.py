from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

import jambonz_lab as jl
from jambonz_lab.protocol.verbs import load_models

load_models()  # as `jambonz-lab serve` does: tests assert first acks, which must not race the SDK import

# the property tests check what the code does, never how fast: in four processes on two cores
# (CI's `-n 4`), generating an input or running one example may take longer than hypothesis's
# timing checks allow, which is no failure of the code under test
settings.register_profile("jambonz_lab", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("jambonz_lab")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what importing the package, the SDK models, pandas and the test modules made.

    A quarter of a million long-lived objects: without the freeze, the collect after each
    test walks them all (most of the suite's time); frozen, it walks what the test made.
    """
    import pandas  # noqa: F401 - the views import it lazily: freeze it with the rest

    gc.collect()
    gc.freeze()


@pytest.fixture
def lab() -> Iterator[jl.Lab]:
    """A running lab on a free loopback port, with a short grace for tests."""
    lab = jl.start(grace=0.3)
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect after each test, so a leaked socket is blamed on the test that leaked it."""
    yield
    gc.collect()
