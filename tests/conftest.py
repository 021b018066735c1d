from __future__ import annotations

from collections.abc import Iterator

import pytest

import jambonz_lab as jl
from jambonz_lab.protocol.verbs import load_models

load_models()  # as `jambonz-lab serve` does: tests assert first acks, which must not race the SDK import


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
    import gc

    gc.collect()
