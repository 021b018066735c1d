"""The ``Jambonz-Signature`` header of HTTP webhooks (sans I/O).

jambonz signs each HTTP webhook request when the account has a webhook
secret (feature-server ``lib/utils/base-requestor.js``, ``_computeSignature``
and ``_generateSigHeader``): the header reads ``t=<unix seconds>,v1=<hex>``,
where ``<hex>`` is HMAC-SHA256, keyed with the secret, of ``"<t>.<body>"``
and ``<body>`` is the JSON text of the payload exactly as sent (the POST
body). WebSocket apps get no signature; they use HTTP Basic credentials.

Example::

    header = request.headers.get("Jambonz-Signature")
    verify(header, body_text, secret)          # raises SignatureError, or returns the timestamp

Any thread.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from ..exceptions import SignatureError

__all__ = ["HEADER", "TOLERANCE", "sign", "verify"]

HEADER = "Jambonz-Signature"
#: how far a signature's timestamp may be from now, in seconds (replayed requests are refused)
TOLERANCE = 300


def _digest(body: str, timestamp: int, secret: str) -> str:
    data = f"{timestamp}.{body}".encode()
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()


def sign(body: str, secret: str, timestamp: int | None = None) -> str:
    """The header value jambonz would send with ``body`` (for tests and simulators)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={_digest(body, t, secret)}"


def verify(
    header: str | None, body: str, secret: str, *, now: float | None = None, tolerance: float = TOLERANCE
) -> int:
    """Check a ``Jambonz-Signature`` header against ``body``; returns its timestamp.

    Raises:
        SignatureError: no header, not ``t=…,v1=…``, a timestamp more than
            ``tolerance`` seconds from ``now``, or no ``v1`` that matches
            (compared in constant time).
    """
    if not header:
        raise SignatureError(
            f"no {HEADER} header: set the same webhook secret on jambonz's account", reason="missing"
        )
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureError(f"{HEADER} is not 't=<seconds>,v1=<hex>': {header[:80]!r}", reason="malformed")
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance:
        raise SignatureError(
            f"{HEADER} timestamp is {abs(clock - timestamp):.0f} s away from now (over {tolerance:g} s): "
            "a replayed request, or a clock to fix",
            reason="stale",
        )
    expected = _digest(body, timestamp, secret)
    if not any(hmac.compare_digest(expected, c) for c in candidates):
        raise SignatureError(
            f"{HEADER} does not match the body for this secret: check the webhook secret", reason="mismatch"
        )
    return timestamp
