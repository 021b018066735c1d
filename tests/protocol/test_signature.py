"""``Jambonz-Signature`` (feature-server ``lib/utils/base-requestor.js`` ~50–66: HMAC-SHA256 of t.body)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from jambonz_lab.exceptions import ProtocolError, SignatureError
from jambonz_lab.protocol.signature import sign, verify

SECRET = "wh_secret_123"
BODY = json.dumps({"call_sid": "abc", "digits": "1"}, separators=(",", ":"))  # as JSON.stringify sends it


def test_the_header_is_what_base_requestor_computes() -> None:
    expected = hmac.new(SECRET.encode(), f"1700000000.{BODY}".encode(), hashlib.sha256).hexdigest()
    assert sign(BODY, SECRET, 1700000000) == f"t=1700000000,v1={expected}"


def test_a_good_signature_verifies_and_gives_its_timestamp() -> None:
    assert verify(sign(BODY, SECRET, 1700000000), BODY, SECRET, now=1700000010) == 1700000000


def test_any_of_several_v1_values_may_match() -> None:
    good = sign(BODY, SECRET, 1700000000).split(",")[1]
    assert verify(f"t=1700000000,v1=deadbeef,{good}", BODY, SECRET, now=1700000000) == 1700000000


@pytest.mark.parametrize(
    ("header", "body", "now", "reason"),
    [
        (None, BODY, 1700000000, "missing"),
        ("", BODY, 1700000000, "missing"),
        ("v1=abc", BODY, 1700000000, "malformed"),
        ("t=soon,v1=abc", BODY, 1700000000, "malformed"),
        ("t=1700000000", BODY, 1700000000, "malformed"),
        (sign(BODY, SECRET, 1700000000), BODY, 1700000301, "stale"),
        (sign(BODY, SECRET, 1700000000), BODY.replace("1", "2"), 1700000000, "mismatch"),
        (sign(BODY, "other", 1700000000), BODY, 1700000000, "mismatch"),
    ],
)
def test_bad_signatures_are_refused_with_a_reason(
    header: str | None, body: str, now: int, reason: str
) -> None:
    with pytest.raises(SignatureError) as info:
        verify(header, body, SECRET, now=now)
    assert info.value.reason == reason
    assert isinstance(info.value, ProtocolError) and "\n" not in str(info.value)
