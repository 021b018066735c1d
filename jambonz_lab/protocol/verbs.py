"""Verb validation against the models of ``jambonz-python-sdk``.

We never hand-write a verb schema: each verb is checked by the pydantic model
that ``jambonz-python-sdk`` generates from ``@jambonz/schema`` (unknown
properties are refused), and a failure becomes one :exc:`VerbError` line in the
style of node-client-ws::

    say: unknown property 'txt' (did you mean 'text'?)
    play: missing required property 'url'
    gather: property 'input' should be a valid list

What goes on the wire is what the caller set (``exclude_unset``), camelCased,
with ``verb`` first — model defaults are not added.

The SDK models are imported lazily, on the first validation, so that
``import jambonz_lab`` stays fast.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
import threading
import typing
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from ..exceptions import VerbError

__all__ = [
    "build_verb",
    "load_models",
    "schema_dir",
    "normalize_verb",
    "normalize_verbs",
    "verb_names",
]

# pydantic puts union branch names into error locations; they are not property names.
_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none", "any"}


log = logging.getLogger("jambonz_lab.protocol")

_sdk_lock = threading.Lock()  # the SDK's package import is not safe to run from two threads at once


def _registry() -> dict[str, tuple[str, dict[str, Any]]]:
    """method name -> (json verb, injected properties), from the SDK's verb registry."""
    load_models()
    return _sdk_registry()


def _model(json_verb: str) -> Any:
    """The SDK's pydantic model of ``json_verb`` (None: no such verb)."""
    load_models()
    return _sdk_model(json_verb)


@cache
def _sdk_registry() -> dict[str, tuple[str, dict[str, Any]]]:
    with _sdk_lock:
        from jambonz_sdk.verb_registry import VERB_DEFS

    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for vdef in VERB_DEFS:
        out[vdef.method_name] = (vdef.json_verb, dict(vdef.inject))
    return out


@cache
def _sdk_model(json_verb: str) -> Any:
    with _sdk_lock:
        from jambonz_sdk._models._registry import verb_model

        return verb_model(json_verb)


_loaded = threading.Event()  # set once the SDK's package and a first model are imported
_load_lock = threading.Lock()


def load_models() -> None:
    """Have the SDK's verb models loaded: at once when they are, else load them here (one thread
    loads, others calling meanwhile wait for it), logging ``loading verb models…`` at INFO.

    The first load takes one to two seconds in a Jupyter environment (importing the SDK imports
    jsonschema, whose IRI format checker builds a grammar at import); later calls are free.
    ``jambonz_lab.start()`` and ``jambonz-lab serve`` call it before they listen.
    """
    if _loaded.is_set():
        return
    with _load_lock:
        if _loaded.is_set():
            return
        log.info("loading verb models… (once per process)")
        _sdk_registry()
        _sdk_model("say")
        _loaded.set()


def verb_names() -> list[str]:
    """Every JSON verb name the SDK models know (``say``, ``sip:decline``, …)."""
    with _sdk_lock:
        from jambonz_sdk._models._registry import all_verb_models

        return sorted(all_verb_models())


def schema_dir() -> Path:
    """The folder of the SDK's bundled JSON Schemas (``verbs/``, ``components/``, …).

    Import the SDK only through this module: its package import must not run on two threads at once.
    """
    with _sdk_lock:
        import jambonz_sdk

        return Path(jambonz_sdk.__file__).resolve().parent / "schema"


def build_verb(method: str, props: Mapping[str, Any]) -> dict[str, Any]:
    """Validate one verb given by method name and properties; return its wire dict.

    Args:
        method: a verb method name (``"say"``, ``"sip_decline"``,
            ``"openai_s2s"``) or a JSON verb name (``"sip:decline"``).
        props: the verb's properties, camelCase (``actionHook``) or
            snake_case (``action_hook``); ``from_`` stands for ``from``.

    Raises:
        VerbError: unknown verb or invalid property, in one line.
    """
    registry = _registry()
    if method in registry:
        json_verb, inject = registry[method]
    else:
        json_verb, inject = method, {}
    payload = {("from" if k == "from_" else k): v for k, v in props.items() if v is not None}
    for key, value in inject.items():
        payload.setdefault(key, value)
    return _validate(json_verb, payload)


def normalize_verb(verb: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a verb given as JSON, ``{"verb": "say", …}`` or ``{"say": {…}}``.

    Raises:
        VerbError: the verb is not in either form, unknown, or invalid.
    """
    if not isinstance(verb, Mapping):
        raise VerbError(f"verb must be an object, not {type(verb).__name__}", verb="?")
    if "verb" in verb:
        name = verb["verb"]
        if not isinstance(name, str):
            raise VerbError("'verb' must be a string", verb="?", property="verb")
        props = {k: v for k, v in verb.items() if k != "verb"}
    elif len(verb) == 1:
        name, inner = next(iter(verb.items()))
        if not isinstance(inner, Mapping):
            raise VerbError(f"{name}: properties must be an object", verb=str(name))
        props = dict(inner)
    else:
        raise VerbError("verb object has no 'verb' key", verb="?", property="verb")
    return _validate(name, props)


def normalize_verbs(verbs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validate a verb list (see :func:`normalize_verb`); errors name the index."""
    out = []
    for i, verb in enumerate(verbs):
        try:
            out.append(normalize_verb(verb))
        except VerbError as exc:
            lines = "\n".join(f"verb {i}: {line}" for line in exc.problems)
            raise VerbError(lines, verb=exc.verb, property=exc.property) from None
    return out


def _validate(json_verb: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Validate through the SDK model; a verb of a shape seen before is served from a small cache.

    The key is the payload itself, except that a value of a *free* string
    property (one the model takes as any string, unchanged: ``say.text``,
    ``id``) stands for every string: ``say "You pressed 1"`` and ``say "You
    pressed 2"`` share one validation, the second only copies in its text.
    """
    free = _free_strings(json_verb)
    key: Any = _shape(json_verb, payload, free)
    if key is None:
        try:
            key = json_verb + json.dumps(payload, sort_keys=True, separators=(",", ":"))
        except (TypeError, ValueError):
            key = None  # not JSON: the model will say what is wrong
    if key is not None and (hit := _cache.get(key)) is not None:
        wire = dict(hit)  # top level copied; nested values are only ever read
        for name in free.intersection(payload):
            if type(payload[name]) is str:
                wire[name] = payload[name]
        return wire
    wire = _validate_uncached(json_verb, payload)
    if key is not None:
        if len(_cache) >= _CACHE_SIZE:
            try:
                _cache.pop(next(iter(_cache)))
            except (KeyError, RuntimeError, StopIteration):  # another worker thread evicted at once
                pass
        _cache[key] = wire
        return dict(wire)
    return wire


_CACHE_SIZE = 512
_cache: dict[Any, dict[str, Any]] = {}
_SCALARS = (str, int, float, bool, type(None))
_ANY_STRING = object()  # a free string property's value, in a shape key


def _shape(json_verb: str, payload: Mapping[str, Any], free: frozenset[str]) -> tuple[Any, ...] | None:
    """A cache key for a payload of scalars (free strings folded into one mark), else None."""
    if not free:
        return None
    parts: list[Any] = [json_verb]
    for name, value in payload.items():
        kind = type(value)
        if kind not in _SCALARS:
            return None
        parts.append((name, _ANY_STRING if kind is str and name in free else (kind, value)))
    return tuple(parts)


@cache
def _free_strings(json_verb: str) -> frozenset[str]:
    """Properties whose every string value the verb's model accepts and keeps as it is.

    A property qualifies when its type is ``str`` or a union holding ``str``
    (smart-mode unions keep an exact ``str`` as it is) with no constraint; a
    model with validators of its own, or string settings, has none.
    """
    model = _model(json_verb)
    if model is None:
        return frozenset()
    hooks = model.__pydantic_decorators__
    if hooks.validators or hooks.field_validators or hooks.model_validators or hooks.root_validators:
        return frozenset()
    if any(key.startswith("str_") for key in model.model_config):
        return frozenset()
    free = set()
    for name, field in model.model_fields.items():
        args = typing.get_args(field.annotation) or (field.annotation,)
        if str in args and not field.metadata:
            free.add(field.alias or name)
    return frozenset(free)


def _validate_uncached(json_verb: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    from pydantic import ValidationError

    model = _model(json_verb)
    if model is None:
        close = difflib.get_close_matches(json_verb, verb_names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise VerbError(f"unknown verb '{json_verb}'{hint}", verb=json_verb)
    body = dict(payload)
    body.pop("verb", None)
    underscore = body.pop("_", None)  # the one extra key jambonz allows
    try:
        instance = model.model_validate(body)
    except ValidationError as exc:
        raise _verb_error(json_verb, model, exc) from None
    if json_verb == "say":
        _say_has_text(body)
    elif json_verb == "gather" and isinstance(body.get("say"), Mapping):
        _say_has_text(body["say"], "gather", "say.")  # its prompt is a say task (gather.js ~79–80)
    wire: dict[str, Any] = {"verb": json_verb}
    wire.update(_ints(instance.model_dump(mode="json", by_alias=True, exclude_unset=True)))
    if underscore is not None:
        wire["_"] = underscore
    return wire


def _say_has_text(body: Mapping[str, Any], verb: str = "say", prefix: str = "") -> None:
    """A ``say`` needs ``text`` or ``stream: true``: the feature server's say task asserts it when it
    builds the verb ("Say: either text or stream:true is required", ``lib/tasks/say.js`` ~71–72;
    ``make_task.js`` builds every verb of the list, so the list is refused). The SDK's schema
    requires neither. Like jambonz, an empty string or list passes (it speaks nothing)."""
    text = body.get("text")
    if not isinstance(text, str | list) and body.get("stream") is not True:
        raise VerbError(
            f"{verb}: missing required property '{prefix}text' (or '{prefix}stream': true)",
            verb=verb,
            property=f"{prefix}text",
        )


def _ints(value: Any) -> Any:
    """Integral floats back to ints: the models type every number as float (486 -> 486.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def _aliases(model: Any) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items() if name != "verb"]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _is_field(part):
            out += ("." if out else "") + part
    return out


def _is_field(part: str) -> bool:
    if part.lower() in _TYPE_TAGS or part[:1].isupper():
        return False
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_:\-]*", part) is not None and "[" not in part


def _verb_error(verb: str, model: Any, exc: Any) -> VerbError:
    """One line per property with a problem, in pydantic's order (the first one names ``property``)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for error in exc.errors():
        groups.setdefault(_path(tuple(error["loc"])), []).append(error)
    lines = [_problem(verb, model, path, errors) for path, errors in groups.items()]
    first = next(iter(groups))
    err = VerbError("\n".join(lines), verb=verb, property=first or None)
    err.problems = lines
    return err


def _problem(verb: str, model: Any, path: str, errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    if first["type"] == "extra_forbidden":
        key = str(first["loc"][-1])
        choices = _aliases(model) if len(first["loc"]) == 1 else []
        suggestion = _camel(key) if _camel(key) in choices else None
        if suggestion is None and choices:
            close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
            suggestion = close[0] if close else None
        hint = f" (did you mean '{suggestion}'?)" if suggestion else ""
        return f"{verb}: unknown property '{path}'{hint}"
    if first["type"] == "missing":
        return f"{verb}: missing required property '{path}'"
    msgs = list(dict.fromkeys(_lower(e["msg"]) for e in errors))
    msgs = [m if i == 0 else m.removeprefix("should be ") for i, m in enumerate(msgs)]
    where = f"property '{path}'" if path else "value"
    return f"{verb}: {where} {' or '.join(msgs)}"


def _lower(msg: str) -> str:
    msg = msg.removeprefix("Input ").removeprefix("Value error, ")
    return msg[:1].lower() + msg[1:]
