"""jambonz's key snake-casing of outgoing payloads (protocol doc §2.1), pure.

The feature server snake-cases every key of ``data`` recursively, except the
subtrees under ``customerData``, ``sip``, ``env_vars`` and ``args``, which are
copied verbatim (so SIP headers keep their case)::

    callSid -> call_sid      sbcCallid -> sbc_callid     X-Reason -> x_reason
    Call-ID -> call_id       user-agent -> user_agent    _customerData -> customerdata
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["VERBATIM", "snake_case", "snake_keys"]

VERBATIM = frozenset({"customerData", "sip", "env_vars", "args"})
_SEPARATED = re.compile(r"[\W_]+(\w)")
_CAMEL = re.compile(r"([A-Z])")


def snake_case(key: str) -> str:
    """One key, as npm ``to-snake-case`` turns it."""
    if re.search(r"\s", key):
        out = key.lower()
    elif re.search(r"[_\-.:]", key):
        out = _SEPARATED.sub(lambda m: " " + m.group(1), key).lower()
    elif re.search(r"[a-z][A-Z]", key):
        out = _CAMEL.sub(r" \1", key).lower()
    else:
        out = key.lower()
    return "_".join(out.split())


def snake_keys(value: Any) -> Any:
    """Snake-case every key of ``value`` recursively, keeping the verbatim subtrees."""
    if isinstance(value, dict):
        return {
            (k if k in VERBATIM else snake_case(k)): (v if k in VERBATIM else snake_keys(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value
