"""Text to speech as a say task prepares it: the ``synthesized-audio`` events (``tasks/tts-task.js``).

Before a say (or a gather's nested say) starts playing, jambonz turns each
entry of its ``text`` into audio (``_synthesizeWithSpecificVendor``, ~294–398),
then sends ``start-playback``. With ``notifyEvents`` on, each entry it
synthesizes sends a ``verb:status`` (``Task.notifyStatus``, ``task.js`` ~216):

* ``event: "synthesized-audio"``, ``vendor``, ``language``, ``served_from_cache``
  and the verb's ``id``;
* a fresh synthesis adds ``characters`` (the entry's length) and
  ``elapsed_time`` (the vendor's round trip, ms; ~333–342);
* audio from the TTS cache has neither (~344–352); ``disableTtsCache`` skips
  the cache.

An entry that parses as a URL (``new URL(text)`` succeeds, ~387, ~405) is not
synthesized: jambonz plays it as a file. That is true of any text that starts
with a scheme-like word and a colon, ``"Note: we are closed"`` included; the
simulator notes it (``tts-url``), since the caller would hear nothing.

The simulator's cache is the call's (jambonz's lives in Redis and is shared by
an account's calls), and the round trip is a fixed function of the text's
length: the events are deterministic and the call's clock does not move.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ..payloads import SYNTHESIZER
from . import task_status

if TYPE_CHECKING:
    from ..context import VerbContext

__all__ = ["is_url", "synthesize"]

#: WHATWG URL schemes whose URLs need a host: ``new URL("http:")`` throws
SPECIAL = {"http", "https", "ws", "wss", "ftp", "file"}
_SCHEME = re.compile(r"[\x00-\x20]*([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.DOTALL)


def is_url(text: str) -> bool:
    """Whether ``new URL(text)`` would succeed, as far as a say's text can tell.

    Example::

        is_url("Note: hi"), is_url("Press 1: sales"), is_url("https://x/a.mp3")
        # (True, False, True)
    """
    match = _SCHEME.match(text)
    if match is None:
        return False
    scheme, rest = match.group(1).lower(), match.group(2)
    return scheme not in SPECIAL or bool(rest.strip("/ \t\r\n"))


def _synthesizer(call: VerbContext, verb: dict[str, Any]) -> dict[str, str]:
    """The verb's synthesizer, else the session's (``config``), else the defaults; ``default`` is no value."""
    given = verb.get("synthesizer")
    own: dict[str, Any] = given if isinstance(given, dict) else {}
    configured = call.config.get("synthesizer")
    session: dict[str, Any] = configured if isinstance(configured, dict) else {}
    chosen: dict[str, str] = {}
    for key, fallback in SYNTHESIZER.items():
        for source in (own, session):
            value = source.get(key)
            if value and value != "default":
                chosen[key] = str(value)
                break
        else:
            chosen[key] = fallback
    return chosen


def round_trip_ms(text: str) -> int:
    """The simulated vendor's synthesis time for ``text``, in ms."""
    return 120 + 3 * len(text)


async def synthesize(call: VerbContext, verb: dict[str, Any], entries: list[str]) -> list[str]:
    """Prepare ``entries`` as jambonz does; return the ones played as URLs (not spoken)."""
    tts = _synthesizer(call, verb)
    urls: list[str] = []
    for text in entries:
        if is_url(text):
            urls.append(text)
            call.note("tts-url", f"{text!r} parses as a URL: jambonz plays it as a file, it is not spoken")
            continue
        if text.startswith("silence_stream://"):
            continue
        key = (tts["vendor"], tts["language"], tts["voice"], text)
        cached = key in call.tts_cache and not verb.get("disableTtsCache")
        facts: dict[str, Any] = {"vendor": tts["vendor"], "language": tts["language"]}
        if cached:
            await task_status(call, verb, "synthesized-audio", **facts, servedFromCache=True)
        else:
            call.tts_cache.add(key)
            await task_status(
                call,
                verb,
                "synthesized-audio",
                **facts,
                characters=len(text),
                elapsedTime=round_trip_ms(text),
                servedFromCache=False,
            )
    return urls
