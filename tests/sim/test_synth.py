"""``is_url`` against what Node's ``new URL(text)`` does (checked with node 20 for each case)."""

from __future__ import annotations

import pytest

from jambonz_lab.sim.verbs.synth import is_url

# (text, new URL(text) succeeds) — verified with `node -e 'new URL(t)'`
CASES = [
    ("Note: hi", True),
    ("Time: 10", True),
    ("a:b", True),
    ("https://x/a.mp3", True),
    ("Hello there", False),
    ("Press 1: sales", False),
    ("10:30 works", False),
    ("silence_stream://1000", False),
    ("http:", False),
    ("http://", False),
    ("", False),
]


@pytest.mark.parametrize(("text", "url"), CASES)
def test_is_url_matches_whatwg(text: str, url: bool) -> None:
    assert is_url(text) is url
