"""What the simulated recognizer reports to a gather, and how ``gather.js`` 0.9.8 reads it.

* The recognizer is the verb's ``recognizer`` over the session's (the last ``config``'s), key by
  key (``stt-task.js`` ~104–118); vendor and language ``default`` or missing fall back to the
  session's, then the application's (Google, en-US; ~119–126).
* Interim transcripts carry confidence 0 (Google's "not set"), so ``minConfidence`` never
  applies to them; the check needs both values truthy (``gather.js`` ~954–961).
* Continuous ASR (``asrTimeout`` a number > 0, ~58–64; a session ``asrTimeout`` number, ~195–203;
  speechmatics always, 1.2 s, ~187–193) buffers finals without their trailing punctuation
  (~1010–1021) and joins them as ``consolidateTranscripts`` does
  (``lib/utils/transcription-utils.js`` ~215–263).
* A vendor error goes to the vendor's own error listener where ``_setSpeechHandlers`` set one
  (deepgram, deepgramflux, gladia, assemblyai, houndify, voxist, cartesia, speechmatics and openai
  — these two re-wrap it as JSON, ~1224–1234; ``_onVendorError`` ~1257: the actionHook gets
  ``reason: "error"``); for the others it is jambonz's common error event (``_onJambonzError``
  ~1190–1215: the gather ends with no actionHook).
"""

from __future__ import annotations

import json
import re
import weakref
from typing import TYPE_CHECKING, Any

from ..payloads import RECOGNIZER

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = [
    "asr_timeout",
    "consolidate",
    "effective_recognizer",
    "error_route",
    "fall_back",
    "session_vendor",
    "strip_punctuation",
]

#: vendors whose error event ``_setSpeechHandlers`` listens to (``gather.js`` ~474–660)
VENDOR_ERRORS = frozenset(
    "deepgram deepgramflux gladia assemblyai houndify voxist cartesia speechmatics openai".split()
)
#: their handlers pass ``{error: JSON.stringify(evt without message)}`` on (~1224–1234)
JSON_ERRORS = frozenset({"speechmatics", "openai"})
SPEECHMATICS_ASR_TIMEOUT = 1.2  # seconds (~33, ~187–193)

_fallen_back: weakref.WeakKeyDictionary[VerbContext, str] = weakref.WeakKeyDictionary()


def effective_recognizer(call: VerbContext, verb: dict[str, Any]) -> dict[str, Any]:
    """The verb's recognizer over the session's, with vendor and language resolved."""
    session = call.config.get("recognizer")
    session = session if isinstance(session, dict) else {}
    own = verb.get("recognizer")
    own = own if isinstance(own, dict) else {}
    merged = {**session, **{k: v for k, v in own.items() if v is not None}}
    for key, default in RECOGNIZER.items():
        if merged.get(key) in (None, "", "default"):
            fallback = session.get(key)
            merged[key] = fallback if fallback not in (None, "", "default") else default
    return merged


def asr_timeout(call: VerbContext, verb: dict[str, Any], vendor: str) -> tuple[bool, float, Any]:
    """(continuous, asrTimeout seconds, asrDtmfTerminationDigit)."""
    own = verb.get("recognizer")
    own = own if isinstance(own, dict) else {}
    raw: Any = own.get("asrTimeout")
    if _is_number(raw) and raw > 0:
        return True, float(raw), own.get("asrDtmfTerminationDigit")
    if vendor == "speechmatics":  # the max_delay it reads is never set (this.recognizer, ~188)
        return True, SPEECHMATICS_ASR_TIMEOUT, None
    session = call.config.get("recognizer")
    if isinstance(session, dict) and _is_number(session.get("asrTimeout")):
        # cs.isContinuousAsr is true for any number (config.js ~223): 0 gives a 0 s window
        return True, float(session["asrTimeout"]), session.get("asrDtmfTerminationDigit")
    return False, 0.0, None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def strip_punctuation(text: str, vendor: str) -> str:
    """A final's trailing ``, ; : . ! ?`` goes, before buffering (not for speechmatics; ~1015)."""
    if vendor != "speechmatics" and re.search(r"[,;:.!?]$", text):
        return text[:-1]
    return text


def consolidate(buffered: list[dict[str, Any]], language: str, vendor: str) -> dict[str, Any]:
    """``consolidateTranscripts``: one final as it is; more joined, their confidence averaged."""
    if len(buffered) == 1:
        return {**buffered[0], "is_final": True}
    joined = ""
    total = 0.0
    for evt in buffered:
        alt = evt["alternatives"][0]
        total += alt["confidence"]
        piece: str = alt["transcript"]
        if re.fullmatch(r"[\d\s]+[,.]?", piece):  # digits only: spaces and a trailing , or . go
            piece = re.sub(r"\s", "", piece).removesuffix(",").removesuffix(".")
        glue = vendor == "speechmatics" or (joined[-1:].isdigit() and piece[:1].isdigit())
        joined += piece if glue else f" {piece}"
    return {
        "language_code": language,
        "channel_tag": 1,
        "is_final": True,
        "alternatives": [{"transcript": joined.strip(), "confidence": total / len(buffered)}],
        "vendor": {"name": vendor, "evt": buffered},
    }


def error_route(vendor: str, error: str) -> tuple[str, str]:
    """("vendor", evt.error) for a vendor error listener, ("jambonz", error) for the common one."""
    if vendor in VENDOR_ERRORS:
        if vendor in JSON_ERRORS:
            return "vendor", json.dumps({"error": error}, separators=(",", ":"))
        return "vendor", error
    return "jambonz", error


def fall_back(call: VerbContext, recognizer: dict[str, Any]) -> str | None:
    """``canFallback`` and ``_initFallback`` (``stt-task.js`` ~314–331): the fallback vendor, once
    per call (``cs.hasFallbackAsr``); None: not available."""
    vendor = recognizer.get("fallbackVendor")
    if vendor in (None, "", "default") or call in _fallen_back:
        return None
    _fallen_back[call] = str(vendor)
    return str(vendor)


def session_vendor(call: VerbContext, verb: dict[str, Any], vendor: str) -> str:
    """After a fallback, a gather without its own recognizer uses the fallback vendor; one with
    a recognizer clears the call's fallback (``stt-task.js`` ~145–155)."""
    if isinstance(verb.get("recognizer"), dict):
        _fallen_back.pop(call, None)
        return vendor
    return _fallen_back.get(call, vendor)
