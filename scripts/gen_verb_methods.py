"""Generate jambonz_lab/protocol/_verb_methods.py from jambonz-python-sdk.

One chainable method per verb in the SDK's verb registry, with keyword-only
parameters named as on the wire (camelCase; ``from`` becomes ``from_``) and
types read from the SDK's bundled JSON Schemas, so that tab completion and
mypy see real signatures. Validation itself stays with the SDK's models
(:mod:`jambonz_lab.protocol.verbs`).

Run: ``python scripts/gen_verb_methods.py`` (``--check`` exits 1 when the
file on disk differs, which tests/protocol/test_verb_methods.py uses).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import jambonz_sdk
from jambonz_sdk._models._registry import verb_model
from jambonz_sdk.verb_registry import VERB_DEFS

SCHEMA_DIR = Path(jambonz_sdk.__file__).parent / "schema"
OUT = Path(__file__).resolve().parent.parent / "jambonz_lab" / "protocol" / "_verb_methods.py"
SIMPLE = {
    "string": "str",
    "number": "float",
    "integer": "int",
    "boolean": "bool",
    "object": "dict[str, Any]",
    "array": "list[Any]",
}

# Properties the schemas type "number" that jambonz uses as whole numbers: digit and word counts
# (gather.js ~413 compares the digit buffer's length with numDigits/maxDigits using ===), a member
# limit (conference.js ~415), a queue priority ("need to be non-negative integer", enqueue.js ~79),
# a SIP status, audio channels and sample rates, a say/play loop count. Typed int, so that
# completion and mypy say so; the SDK's models still accept what jambonz accepts.
INTEGER_NUMBERS = frozenset(
    {
        "numDigits",
        "minDigits",
        "maxDigits",
        "minBargeinWordCount",
        "maxParticipants",
        "priority",
        "status",
        "channel",
        "sampleRate",
        "loop",
    }
)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def schema_for(json_verb: str) -> dict[str, Any]:
    for f in (SCHEMA_DIR / "verbs").glob("*.schema.json"):
        s = load(f)
        if s.get("$id", "").rsplit("/", 1)[-1] in (json_verb, json_verb.replace(":", "-")):
            return s
    return {}


def properties(schema: dict[str, Any]) -> dict[str, Any]:
    props = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        ref = part.get("$ref")
        if ref:
            props.update(properties(load((SCHEMA_DIR / "verbs" / (ref + ".schema.json")).resolve())))
        props.update(part.get("properties", {}))
    return props


def py_type(spec: Any, depth: int = 0) -> str:
    if not isinstance(spec, dict):
        return "Any"
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1] + ".schema.json"
        target = SCHEMA_DIR / "components" / name
        if depth > 2 or not target.is_file():
            return "dict[str, Any]"
        ref = load(target)
        if not (ref.get("oneOf") or ref.get("anyOf")):
            return "dict[str, Any]"
        return py_type(ref, depth + 1)
    if "enum" in spec and all(isinstance(v, str) for v in spec["enum"]):
        return "Literal[" + ", ".join(json.dumps(v) for v in spec["enum"]) + "]"
    if "const" in spec:
        return type(spec["const"]).__name__
    branches = spec.get("oneOf") or spec.get("anyOf")
    if branches:
        parts = list(dict.fromkeys(py_type(b, depth) for b in branches))
        return "Any" if "Any" in parts else " | ".join(parts)
    t = spec.get("type")
    if isinstance(t, list):
        return " | ".join(dict.fromkeys(SIMPLE.get(x, "Any") for x in t))
    if t == "array" and isinstance(spec.get("items"), dict):
        inner = py_type(spec["items"], depth)
        return f"list[{inner}]"
    return SIMPLE.get(t, "Any") if isinstance(t, str) else "Any"


def first_sentence(text: str) -> str:
    text = " ".join(text.split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def method_source(vdef: Any) -> str:
    schema = schema_for(vdef.json_verb) or schema_for(vdef.spec_name)
    props = properties(schema)
    model = verb_model(vdef.json_verb)
    names = [f.alias or n for n, f in model.model_fields.items() if n != "verb"] if model else []
    required = set(schema.get("required", []))
    params, docs = [], []
    for name in names:
        if name in vdef.inject:
            continue
        py = "from_" if name == "from" else name
        typ = py_type(props.get(name))
        if name in INTEGER_NUMBERS:
            typ = " | ".join("int" if part == "float" else part for part in typ.split(" | "))
        typ = "Any" if typ == "Any" else f"{typ} | None"
        params.append(f"        {py}: {typ} = None,")
        desc = first_sentence(props.get(name, {}).get("description", "")) if name in props else ""
        req = " Required." if name in required else ""
        docs.append(f"{py}: {desc}{req}".rstrip())
    summary = vdef.doc or first_sentence(schema.get("description", ""))
    extra = []
    if vdef.inject:
        extra.append(f"Sends verb ``{vdef.json_verb}`` with {vdef.inject}.")
    if schema.get("minVersion"):
        extra.append(f"Needs jambonz {schema['minVersion']} or later.")
    doc = [summary, ""] + ([" ".join(extra), ""] if extra else [])
    doc.append("Args:")
    doc.append("    spec: the properties as one dict or SDK model, instead of keywords.")
    for d in docs:
        doc.extend(textwrap.wrap(d, 88, initial_indent="    ", subsequent_indent="        "))
    doc.append("")
    doc.append("Raises:")
    doc.append("    VerbError: a property is unknown, missing or of the wrong type.")
    body = "\n".join(("        " + line) if line else "" for line in doc)
    sig = "\n".join(params)
    return (
        f"    def {vdef.method_name}(\n"
        f"        self,\n"
        f"        spec: Mapping[str, Any] | Any = None,\n"
        f"        /,\n"
        f"        *,\n"
        f"{sig}\n"
        f"        **extra: Any,\n"
        f"    ) -> Self:\n"
        f'        """{body.lstrip()}\n        """\n'
        f"        return self._verb({vdef.method_name!r}, spec, locals())\n"
    )


HEADER = '''"""Chainable verb methods — GENERATED by scripts/gen_verb_methods.py; do not edit.

Generated from jambonz-python-sdk {version}'s verb registry and JSON Schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self

__all__ = ["VerbMethods"]


class VerbMethods:
    """One method per jambonz verb; each validates and queues the verb, returns self.

    Subclasses implement :meth:`_verb`.
    """

    def _verb(self, method: str, spec: Any, args: dict[str, Any]) -> Self:
        raise NotImplementedError

'''


def generate() -> str:
    version = importlib.metadata.version("jambonz-python-sdk")
    parts = [HEADER.format(version=version)]
    parts.extend(method_source(v) + "\n" for v in VERB_DEFS)
    return "".join(parts).rstrip() + "\n"


def main() -> int:
    src = generate()
    if "--check" in sys.argv:
        return 0 if OUT.read_text() == src else 1
    OUT.write_text(src)
    return 0


if __name__ == "__main__":
    sys.exit(main())
