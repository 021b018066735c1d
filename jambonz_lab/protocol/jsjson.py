"""JSON text as Node's ``JSON.stringify`` writes it (sans I/O).

jambonz builds each webhook body with ``JSON.stringify(payload)`` and signs that same text
(feature-server ``lib/utils/http-requestor.js`` ~191, ``lib/utils/base-requestor.js`` ~50–53).
Python's ``json.dumps`` differs in its numbers: ``1.0`` (Node: ``1``), ``1e-07`` (``1e-7``),
``1e+16`` (``10000000000000000``), ``NaN`` (``null``). An app that checks the signature over the
body *re-serialised* (``@jambonz/sdk``'s ``WebhookResponse.verifySignature`` HMACs
``JSON.stringify(req.body)``) sees those as a bad signature, so the simulator writes Node's text.

Strings are escaped as ``json.dumps(..., ensure_ascii=False)`` does, which is what Node does for
well-formed text (``"``, ``\\``, control characters; lowercase ``\\u00xx``).

Example::

    stringify({"confidence": 1.0, "t": 1e-7})   # '{"confidence":1,"t":1e-7}'

Any thread.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

__all__ = ["js_number", "stringify"]


def js_number(x: float) -> str:
    """``Number.prototype.toString`` of ``x`` (ECMA-262 Number::toString), ``null`` if not finite."""
    if not math.isfinite(x):
        return "null"
    if x == 0:
        return "0"  # -0 too
    sign = "-" if x < 0 else ""
    mantissa, _, exp = repr(abs(x)).partition("e")  # repr: the shortest digits that round-trip
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    n = len(whole) + int(exp or 0) - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{sign}{head}e{'+' if e >= 0 else '-'}{abs(e)}"


def stringify(value: Any) -> str:
    """``JSON.stringify(value)`` for JSON-like Python values (dict, list, tuple, str, numbers, bool, None).

    Raises:
        TypeError: a value JSON has no text for.
    """
    if value is None or value is True or value is False:
        return json.dumps(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return js_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = (f"{stringify(_key(k))}:{stringify(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(stringify(v) for v in value) + "]"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key) if not isinstance(key, float) else js_number(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")
