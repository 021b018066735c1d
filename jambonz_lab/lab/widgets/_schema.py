"""The top-level properties of each verb, read from jambonz-python-sdk's bundled JSON schemas.

The SDK ships ``jambonz_sdk/schema/verbs/<verb>.schema.json`` (generated from
``@jambonz/schema``). A verb's fields are its own ``properties`` plus those of the
schemas it pulls in with ``allOf: [{$ref}]`` or a top-level ``$ref`` (``room`` is
``conference``; the ``*_s2s`` verbs share ``components/llm-base``).

Example::

    doc, fields = verb_fields("say")
    [f.name for f in fields]          # ['id', 'text', 'instructions', 'stream', 'loop', ...]

Pure and cached; any thread.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from typing import Any

__all__ = ["Field", "parse_value", "verb_fields", "verb_methods"]


@dataclass(frozen=True)
class Field:
    """One top-level property of a verb.

    Attributes:
        name: the wire name (camelCase, as jambonz reads it).
        types: JSON types it accepts (``string``, ``number``, ``boolean``, ``object``,
            ``array``, ``integer``, ``null``); empty when the schema does not say.
        description: the schema's description (plain text).
        required: the verb needs it.
    """

    name: str
    types: tuple[str, ...]
    description: str
    required: bool

    @property
    def hint(self) -> str:
        """A short placeholder for an input: ``string | array``."""
        return " | ".join(self.types) if self.types else "JSON"


@cache
def verb_methods() -> tuple[str, ...]:
    """The SDK registry's verb method names, in its order (``say``, ``play``, ``gather``, …)."""
    from ...protocol.verbs import _registry  # imports the SDK under jambonz_lab's import lock

    return tuple(_registry())


def _root() -> Traversable:
    return resources.files("jambonz_sdk").joinpath("schema")


def _load(node: Traversable) -> dict[str, Any]:
    data = json.loads(node.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


@cache
def _verb_file(method: str) -> str | None:
    """The schema file (relative to schema/verbs) of a registry method name."""
    from ...protocol.verbs import _registry

    candidates = [method]
    if method in _registry():
        candidates.append(_registry()[method][0])  # the JSON verb name: sip_decline -> sip:decline
    verbs = _root().joinpath("verbs")
    for name in candidates:
        file = name.replace(":", "-") + ".schema.json"
        if verbs.joinpath(file).is_file():
            return file
    return None


def _resolve(ref: str, folder: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    """A ``$ref`` to another schema file: (its folder, its file name); None for ``#`` refs."""
    if not ref or ref.startswith("#"):
        return None
    parts = list(folder)
    for piece in ref.split("#", 1)[0].split("/"):
        if piece == "..":
            if parts:
                parts.pop()
        elif piece and piece != ".":
            parts.append(piece)
    if not parts:
        return None
    name = parts.pop()
    if not name.endswith(".json"):
        name += ".schema.json"
    return tuple(parts), name


def _collect(
    folder: tuple[str, ...], name: str, seen: set[tuple[tuple[str, ...], str]]
) -> tuple[dict[str, Any], list[str], str]:
    """(properties, required, description) of a schema file and what it includes."""
    key = (folder, name)
    if key in seen:
        return {}, [], ""
    seen.add(key)
    node = _root()
    for part in folder:
        node = node.joinpath(part)
    node = node.joinpath(name)
    if not node.is_file():
        return {}, [], ""
    doc = _load(node)
    props: dict[str, Any] = {}
    required: list[str] = []
    description = str(doc.get("description") or "")

    def merge(sub: dict[str, Any]) -> None:
        nonlocal description
        target = _resolve(str(sub.get("$ref", "")), folder) if "$ref" in sub else None
        if target is not None:
            p, r, d = _collect(target[0], target[1], seen)
            props.update(p)
            required.extend(r)
            description = description or d

    merge(doc)
    for sub in doc.get("allOf") or []:
        if isinstance(sub, dict):
            merge(sub)
            props.update(sub.get("properties") or {})
            required.extend(sub.get("required") or [])
    props.update(doc.get("properties") or {})
    required.extend(doc.get("required") or [])
    return props, required, description


def _types(spec: Any, folder: tuple[str, ...] = ("verbs",), depth: int = 0) -> tuple[str, ...]:
    """JSON types a property accepts (through ``oneOf``/``anyOf`` and file ``$ref``s)."""
    if not isinstance(spec, dict) or depth > 4:
        return ()
    out: list[str] = []
    kind = spec.get("type")
    if isinstance(kind, str):
        out.append(kind)
    elif isinstance(kind, list):
        out += [str(k) for k in kind]
    for branch in ("oneOf", "anyOf"):
        for sub in spec.get(branch) or []:
            out += _types(sub, folder, depth + 1)
    if not out and "$ref" in spec:
        target = _resolve(str(spec["$ref"]), folder)
        node = _root()
        for part in target[0] if target else ():
            node = node.joinpath(part)
        if target is not None and node.joinpath(target[1]).is_file():
            out += _types(_load(node.joinpath(target[1])), target[0], depth + 1)
        out = out or ["object"]
    if not out and "const" in spec:
        out.append(type(spec["const"]).__name__.replace("str", "string"))
    if not out and isinstance(spec.get("enum"), list) and all(isinstance(v, str) for v in spec["enum"]):
        out.append("string")
    return tuple(dict.fromkeys(out))


@cache
def verb_fields(method: str) -> tuple[str, tuple[Field, ...]]:
    """(description, fields) of a verb method; fields in schema order, ``verb`` left out.

    Raises:
        KeyError: the SDK has no schema for ``method``.
    """
    file = _verb_file(method)
    if file is None:
        raise KeyError(f"no schema for verb {method!r} in jambonz_sdk/schema/verbs")
    props, required, description = _collect(("verbs",), file, set())
    need = set(required)
    fields = tuple(
        Field(
            name=name,
            types=_types(spec),
            description=str(spec.get("description") or "") if isinstance(spec, dict) else "",
            required=name in need,
        )
        for name, spec in props.items()
        if name != "verb"
    )
    return description, fields


_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")


def parse_value(text: str, types: tuple[str, ...] = ()) -> Any:
    """A field's text as the value to send.

    Text of a string-only property stays as typed. Otherwise text that looks like JSON
    (an object, array, quoted string, number, ``true``/``false``/``null``) is parsed;
    anything else, or JSON that does not parse, stays text (validation then says why).

    Example::

        parse_value("2", ("number", "string"))   # 2
        parse_value("2", ("string",))            # "2"
        parse_value('["a", "b"]')                # ["a", "b"]
    """
    if types and set(types) <= {"string"}:
        return text
    s = text.strip()
    if s in ("true", "false", "null") or _NUMBER.fullmatch(s) or s[:1] in ("{", "[", '"'):
        try:
            return json.loads(s)
        except ValueError:
            return text
    return text
