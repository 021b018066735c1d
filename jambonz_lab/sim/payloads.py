"""What the simulated feature server says about a call: CallInfo shapes and session payloads.

``call_info`` is jambonz's ``CallInfo.toJSON()`` (hooks, ``call:status``), ``raw_info`` the
raw CallInfo (transcription and conference wait hooks), ``session_new_payload`` an inbound
``session:new`` (the INVITE with its headers and SDP), ``outbound_facts`` and
``outbound_session_new`` a REST-created call's (protocol doc §2.2, §2.6, §2.7).
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .engine import SimCall

__all__ = [
    "RECOGNIZER",
    "REST_RING_TIMEOUT",
    "SYNTHESIZER",
    "call_info",
    "outbound_facts",
    "outbound_session_new",
    "raw_info",
    "session_new_payload",
]

REST_RING_TIMEOUT = 60.0  # createCall ``timeout`` default: jambonz CANCELs an unanswered REST call
#: the simulated application's speech defaults (``defaults`` in ``session:new``; what a verb
#: without its own synthesizer or recognizer uses)
SYNTHESIZER = {"vendor": "google", "language": "en-US", "voice": "en-US-Standard-C"}
RECOGNIZER = {"vendor": "google", "language": "en-US"}


def call_info(call: SimCall) -> dict[str, Any]:
    """The toJSON() shape of the call (most hooks and call:status)."""
    facts = call.facts
    info: dict[str, Any] = {
        "call_sid": call.call_sid,
        "direction": call.direction,
        "from": facts["from"],
        "to": facts["to"],
        "call_id": facts["call_id"],
    }
    if "sbc_callid" in facts:  # a REST outbound call has one from its first 18x or 200 on
        info["sbc_callid"] = facts["sbc_callid"]
    info.update(
        {
            "sip_status": call.sip_status,
            "sip_reason": call.sip_reason,
            "call_status": call.status,
            "account_sid": facts["account_sid"],
            "trace_id": facts["trace_id"],
            "application_sid": facts["application_sid"],
            "fs_sip_address": "10.0.1.30:5070",
        }
    )
    for key in ("originating_sip_ip", "originating_sip_trunk_name"):  # inbound only
        if key in facts:
            info[key] = facts[key]
    if call.customer_data is not None:
        info["customerData"] = call.customer_data
    info["fs_public_ip"] = "203.0.113.30"
    return info


def raw_info(call: SimCall) -> dict[str, Any]:
    """The raw CallInfo shape (transcriptionHook, conference wait hooks)."""
    keys = (
        "direction",
        "trace_id",
        "caller_name",
        "call_sid",
        "account_sid",
        "application_sid",
        "from",
        "to",
        "call_id",
        "sbc_callid",
        "originating_sip_ip",
        "originating_sip_trunk_name",
        "local_sip_address",
    )
    info = {k: call.facts[k] for k in keys if k in call.facts}
    info.update(
        {
            "has_recording": False,
            "sip_status": call.sip_status,
            "sip_reason": call.sip_reason,
            "call_status": call.status,
        }
    )
    return info


def session_new_payload(call: SimCall) -> dict[str, Any]:
    """An inbound ``session:new`` payload: the INVITE, the CallInfo, ``defaults`` (protocol doc §2.2).

    Takes ``to``, ``from_``, ``sip_headers`` and ``env_vars`` out of ``call.attrs``; the
    other attributes override payload fields.
    """
    r = call.ids  # identity: never repeats with the seed

    def hexid(n: int) -> str:
        return "".join(r.choice("0123456789abcdef") for _ in range(n))

    def sid() -> str:
        return str(uuid.UUID(int=r.getrandbits(128)))

    caller, to = call.caller.number, call.attrs.pop("to", "+16175550199")
    frm = call.attrs.pop("from_", None) or call.attrs.pop("from", None) or caller
    call_id = f"{hexid(8)}-{hexid(4)}-{hexid(4)}-{hexid(4)}-{hexid(12)}"
    sbc = f"{hexid(16)}@203.0.113.10"
    account, app = sid(), sid()
    headers = {
        "via": f"SIP/2.0/UDP 10.0.1.20:5060;rport=5060;branch=z9hG4bK{hexid(8)};received=10.0.1.20",
        "max-forwards": "70",
        "from": f'"{call.caller.name}" <sip:{frm}@203.0.113.10>;tag={hexid(6)}',
        "to": f"<sip:{to}@203.0.113.20>",
        "call-id": call_id,
        "cseq": "1001 INVITE",
        "contact": "<sip:10.0.1.20:5060>",
        "content-type": "application/sdp",
        "X-Account-Sid": account,
        "X-CID": sbc,
        "X-Forwarded-For": "198.51.100.7",
        "X-Originating-Carrier": "AcmeCarrier",
        "X-Application-Sid": app,
    }
    headers.update(call.attrs.pop("sip_headers", {}))
    body = (
        "v=0\r\no=- 4711 4711 IN IP4 10.0.1.20\r\ns=-\r\nc=IN IP4 10.0.1.20\r\nt=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    raw = (
        f"INVITE sip:{to}@10.0.1.30:5070 SIP/2.0\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "\r\n"
        + body
    )
    payload: dict[str, Any] = {
        "sip": {
            "headers": headers,
            "raw": raw,
            "body": body,
            "method": "INVITE",
            "version": "2.0",
            "uri": f"sip:{to}@10.0.1.30:5070",
            "payload": [{"type": "application/sdp", "content": body}],
        },
        "direction": "inbound",
        "trace_id": hexid(32),
        "has_recording": False,
        "caller_name": call.caller.name,
        "call_sid": call.call_sid,
        "account_sid": account,
        "application_sid": app,
        "from": frm,
        "to": to,
        "call_id": call_id,
        "sip_status": 100,
        "sip_reason": "Trying",
        "call_status": "trying",
        "sbc_callid": sbc,
        "originating_sip_ip": "198.51.100.7",
        "originating_sip_trunk_name": "AcmeCarrier",
        "local_sip_address": "10.0.1.30:5070",
        "public_ip": "203.0.113.30",
        "service_provider_sid": sid(),
        "defaults": {
            "synthesizer": dict(SYNTHESIZER),
            "recognizer": dict(RECOGNIZER),
        },
    }
    env = call.attrs.pop("env_vars", None)
    if env:
        payload["env_vars"] = dict(env)
    payload.update(call.attrs)
    return payload


def outbound_facts(call: SimCall) -> dict[str, Any]:
    """A REST-created call's CallInfo: ``to`` is the callee (``caller.number``), no SIP of its own.

    Sets ``call.ring_timeout`` and the ``env_vars`` kept for its ``session:new``.
    """
    r = call.ids  # identity: never repeats with the seed

    def hexid(n: int) -> str:
        return "".join(r.choice("0123456789abcdef") for _ in range(n))

    def sid() -> str:
        return str(uuid.UUID(int=r.getrandbits(128)))

    to = call.attrs.pop("to", None) or call.caller.number
    frm = call.attrs.pop("from_", None) or call.attrs.pop("from", None) or "+16175550199"
    call.ring_timeout = float(call.attrs.pop("ring_timeout", REST_RING_TIMEOUT))
    env = call.attrs.pop("env_vars", None)
    call.env_vars = dict(env) if env else None
    facts: dict[str, Any] = {
        "direction": "outbound",
        "trace_id": hexid(32),
        "has_recording": False,
        "caller_name": "",
        "call_sid": call.call_sid,
        "account_sid": sid(),
        "application_sid": sid(),
        "from": frm,
        "to": to,
        "call_id": f"{hexid(8)}-{hexid(4)}-{hexid(4)}-{hexid(4)}-{hexid(12)}",
        "local_sip_address": "10.0.1.30:5070",
        "public_ip": "203.0.113.30",
    }
    facts.update(call.attrs)
    return facts


def outbound_session_new(call: SimCall) -> dict[str, Any]:
    """REST-outbound ``session:new`` data: toJSON() + ``defaults`` + ``env_vars?`` (doc §2.2)."""
    data = call_info(call)
    data["defaults"] = {
        "synthesizer": {**SYNTHESIZER, "label": None},
        "recognizer": {**RECOGNIZER, "label": None},
    }
    if call.env_vars:
        data["env_vars"] = dict(call.env_vars)
    return data
