"""Tests for jambonz_lab.protocol.verbs and the generated VerbMethods (protocol doc §3.2, §4)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
from jambonz_sdk.verb_registry import VERB_DEFS

from jambonz_lab.exceptions import JambonzLabError, VerbError
from jambonz_lab.protocol import VerbMethods, verbs
from jambonz_lab.protocol.verbs import build_verb, normalize_verb, normalize_verbs, verb_names

ROOT = Path(__file__).resolve().parents[2]


def error(fn: object, *args: object) -> VerbError:
    """The VerbError raised by ``fn(*args)``."""
    with pytest.raises(VerbError) as info:
        fn(*args)  # type: ignore[operator]
    return info.value


# -- one-line errors --------------------------------------------------------------------


def test_unknown_property_with_suggestion() -> None:
    """An unknown property names the closest real one."""
    exc = error(build_verb, "say", {"txt": "hi"})
    assert str(exc) == "say: unknown property 'txt' (did you mean 'text'?)"
    assert (exc.verb, exc.property) == ("say", "txt")


def test_unknown_property_camel_case_suggestion() -> None:
    """An unknown snake_case-looking key suggests the camelCase property."""
    exc = error(normalize_verb, {"verb": "config", "notifyEventz": True})
    assert str(exc) == "config: unknown property 'notifyEventz' (did you mean 'notifyEvents'?)"


def test_unknown_nested_property() -> None:
    """A nested unknown property is named by its path, without a suggestion."""
    exc = error(build_verb, "dial", {"target": [{"type": "phone", "numbr": "1"}]})
    assert str(exc) == "dial: unknown property 'target[0].numbr'"
    assert exc.property == "target[0].numbr"


def test_missing_required_property() -> None:
    """A missing required property is named."""
    exc = error(build_verb, "play", {})
    assert str(exc) == "play: missing required property 'url'"
    assert (exc.verb, exc.property) == ("play", "url")


def test_wrong_type_list() -> None:
    """A string where a list is needed says so."""
    exc = error(build_verb, "gather", {"input": "speech"})
    assert str(exc) == "gather: property 'input' should be a valid list"
    assert exc.property == "input"


def test_wrong_type_union() -> None:
    """A value matching no union branch lists the alternatives."""
    assert (
        str(error(build_verb, "say", {"text": 3}))
        == "say: property 'text' should be a valid string or a valid list"
    )


def test_wrong_enum_value() -> None:
    """A value outside an enum lists the allowed values."""
    assert str(error(build_verb, "dub", {"action": "bogus", "track": "t"})) == (
        "dub: property 'action' should be 'addTrack', 'removeTrack', 'silenceTrack', "
        "'playOnTrack' or 'sayOnTrack'"
    )


def test_unknown_verb_with_suggestion() -> None:
    """An unknown verb names the closest known verb."""
    exc = error(normalize_verb, {"verb": "sya", "text": "x"})
    assert str(exc) == "unknown verb 'sya' (did you mean 'say'?)"
    assert (exc.verb, exc.property) == ("sya", None)


def test_unknown_verb_without_suggestion() -> None:
    """An unknown verb with nothing close gets no hint."""
    assert str(error(build_verb, "zzzzzz", {})) == "unknown verb 'zzzzzz'"


def test_verb_error_is_value_error() -> None:
    """VerbError is a ValueError and a JambonzLabError."""
    exc = error(build_verb, "play", {})
    assert isinstance(exc, ValueError)
    assert isinstance(exc, JambonzLabError)


def test_errors_are_one_line() -> None:
    """A validation message with one problem is a single line."""
    for fn, arg in [
        (build_verb, ("say", {"txt": 1})),
        (build_verb, ("play", {})),
    ]:
        assert "\n" not in str(error(fn, *arg))


def test_several_problems_listed_one_line_each() -> None:
    """Every problem is listed, one line per property, the first one named by ``property``."""
    exc = error(build_verb, "dial", {"target": "x", "timeout": "y"})
    assert str(exc).splitlines() == exc.problems
    assert exc.problems[0] == "dial: property 'target' should be a valid list"
    assert len(exc.problems) == 2 and exc.problems[1].startswith("dial: property 'timeout' ")
    assert exc.property == "target"
    two = error(build_verb, "say", {"text": 5, "bogus": 1})
    assert two.problems == [
        "say: property 'text' should be a valid string or a valid list",
        "say: unknown property 'bogus'",
    ]
    listed = error(normalize_verbs, [{"verb": "say", "text": "ok"}, {"verb": "say", "text": 5, "bogus": 1}])
    assert listed.problems == [f"verb 1: {line}" for line in two.problems]


# -- normalize_verb forms ---------------------------------------------------------------


def test_verb_key_form() -> None:
    """{"verb": "say", ...} validates to the wire dict."""
    assert normalize_verb({"verb": "say", "text": "hi", "id": "s1"}) == {
        "verb": "say",
        "text": "hi",
        "id": "s1",
    }


def test_wrapped_form() -> None:
    """{"say": {...}} is accepted and sent as {"verb": "say", ...}."""
    assert normalize_verb({"say": {"text": "hi"}}) == {"verb": "say", "text": "hi"}


def test_colon_verb_wrapped_form() -> None:
    """A colon verb in wrapped form keeps its JSON name."""
    assert normalize_verb({"sip:decline": {"status": 486}}) == {"verb": "sip:decline", "status": 486}


def test_verb_first_on_wire() -> None:
    """'verb' is the first key of the wire dict."""
    assert next(iter(normalize_verb({"say": {"text": "hi"}}))) == "verb"


def test_underscore_key_kept() -> None:
    """The '_' extra key jambonz allows is kept verbatim."""
    verb = normalize_verb({"verb": "say", "text": "hi", "_": {"note": 1}})
    assert verb == {"verb": "say", "text": "hi", "_": {"note": 1}}


def test_snake_case_sent_camel_case() -> None:
    """snake_case properties are accepted and sent camelCase."""
    assert normalize_verb({"verb": "gather", "action_hook": "/g", "finish_on_key": "#"}) == {
        "verb": "gather",
        "actionHook": "/g",
        "finishOnKey": "#",
    }


def test_exclude_unset_gather() -> None:
    """No SDK defaults are added: a gather without input stays without input."""
    assert normalize_verb({"verb": "gather", "actionHook": "/g"}) == {"verb": "gather", "actionHook": "/g"}
    assert normalize_verb({"verb": "gather"}) == {"verb": "gather"}


def test_not_a_mapping() -> None:
    """A non-object verb is refused."""
    assert str(error(normalize_verb, ["say"])) == "verb must be an object, not list"


def test_no_verb_key() -> None:
    """An object with several keys and no 'verb' is refused."""
    exc = error(normalize_verb, {"text": "hi", "loop": 2})
    assert str(exc) == "verb object has no 'verb' key"
    assert exc.property == "verb"


def test_verb_not_a_string() -> None:
    """A non-string 'verb' value is refused."""
    assert str(error(normalize_verb, {"verb": 3})) == "'verb' must be a string"


def test_wrapped_properties_not_object() -> None:
    """The wrapped form needs an object of properties."""
    exc = error(normalize_verb, {"say": "hi"})
    assert str(exc) == "say: properties must be an object"
    assert exc.verb == "say"


def test_normalize_verbs_ok() -> None:
    """normalize_verbs validates each verb in order."""
    assert normalize_verbs([{"say": {"text": "a"}}, {"verb": "hangup"}]) == [
        {"verb": "say", "text": "a"},
        {"verb": "hangup"},
    ]


def test_normalize_verbs_names_index() -> None:
    """An error in a verb list names the index and keeps verb/property."""
    exc = error(normalize_verbs, [{"verb": "say", "text": "hi"}, {"verb": "play"}])
    assert str(exc) == "verb 1: play: missing required property 'url'"
    assert (exc.verb, exc.property) == ("play", "url")


# -- build_verb -------------------------------------------------------------------------


def test_build_snake_case() -> None:
    """build_verb takes snake_case keywords and sends camelCase."""
    assert build_verb("gather", {"input": ["speech"], "action_hook": "/g"}) == {
        "verb": "gather",
        "input": ["speech"],
        "actionHook": "/g",
    }


def test_build_drops_none() -> None:
    """None values are treated as not set."""
    assert build_verb("say", {"text": "hi", "loop": None}) == {"verb": "say", "text": "hi"}


def test_build_method_name_to_json_verb() -> None:
    """sip_decline is sent as sip:decline."""
    assert build_verb("sip_decline", {"status": 486, "reason": "Busy"}) == {
        "verb": "sip:decline",
        "status": 486,
        "reason": "Busy",
    }


def test_build_from_underscore() -> None:
    """from_ stands for the 'from' property."""
    assert build_verb("message", {"to": "+1", "from_": "+2"}) == {"verb": "message", "to": "+1", "from": "+2"}


@pytest.mark.parametrize(
    ("method", "vendor"),
    [
        ("openai_s2s", "openai"),
        ("google_s2s", "google"),
        ("deepgram_s2s", "deepgram"),
        ("ultravox_s2s", "ultravox"),
    ],
)
def test_s2s_shortcut_injects_vendor(method: str, vendor: str) -> None:
    """The *_s2s shortcuts inject their vendor."""
    assert build_verb(method, {"llm_options": {}}) == {"verb": method, "vendor": vendor, "llmOptions": {}}


def test_s2s_shortcut_refuses_other_vendor() -> None:
    """A shortcut refuses a conflicting vendor."""
    assert str(error(build_verb, "openai_s2s", {"vendor": "google", "llmOptions": {}})) == (
        "openai_s2s: property 'vendor' should be 'openai'"
    )


def test_verb_names() -> None:
    """verb_names() lists JSON verb names, sorted."""
    names = verb_names()
    assert names == sorted(names)
    assert {"say", "play", "gather", "sip:decline", "llm", "dub"} <= set(names)


# -- generated VerbMethods --------------------------------------------------------------


def test_verb_methods_match_registry() -> None:
    """VerbMethods has exactly one public method per SDK registry verb."""
    methods = {n for n, f in vars(VerbMethods).items() if inspect.isfunction(f) and not n.startswith("_")}
    assert methods == {v.method_name for v in VERB_DEFS}


@pytest.mark.parametrize("vdef", VERB_DEFS, ids=lambda v: v.method_name)
def test_verb_method_signature(vdef: object) -> None:
    """Each method takes spec positionally and only keyword properties plus **extra."""
    sig = inspect.signature(getattr(VerbMethods, vdef.method_name))  # type: ignore[attr-defined]
    params = list(sig.parameters.values())
    assert [p.name for p in params[:2]] == ["self", "spec"]
    assert params[1].kind is inspect.Parameter.POSITIONAL_ONLY
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[2:-1])


@pytest.mark.parametrize("vdef", VERB_DEFS, ids=lambda v: v.method_name)
def test_verb_method_validates_in_registry(vdef: object) -> None:
    """Every registry method name is known to build_verb (no 'unknown verb')."""
    try:
        build_verb(vdef.method_name, {})  # type: ignore[attr-defined]
    except VerbError as exc:
        assert not str(exc).startswith("unknown verb"), str(exc)


def test_verb_method_calls_verb_hook() -> None:
    """A generated method hands its name, spec and keywords to _verb()."""

    class Recorder(VerbMethods):
        def _verb(self, method: str, spec: object, args: dict[str, object]) -> Recorder:
            self.seen = (method, spec, args["text"], args["extra"])
            return self

    rec = Recorder()
    assert rec.say(text="hi", foo=1) is rec
    assert rec.seen == ("say", None, "hi", {"foo": 1})


def test_generated_file_is_current() -> None:
    """scripts/gen_verb_methods.py --check exits 0 (no schema drift)."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_verb_methods.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# -- the validation cache: free string properties share one validation ------------------------


def test_free_strings_are_the_unconstrained_string_properties() -> None:
    assert {"text", "id"} <= verbs._free_strings("say")
    assert "url" in verbs._free_strings("play")
    assert verbs._free_strings("gather") == frozenset()  # gather's model has validators of its own
    assert verbs._free_strings("no-such-verb") == frozenset()


def test_a_cached_shape_still_carries_each_text() -> None:
    texts = [build_verb("say", {"text": f"You pressed {n}"})["text"] for n in range(600)]
    assert texts == [f"You pressed {n}" for n in range(600)]  # past the cache size too


def test_a_cached_shape_never_lets_a_wrong_type_through() -> None:
    build_verb("say", {"text": "hello", "loop": 2})
    with pytest.raises(VerbError, match="text"):
        build_verb("say", {"text": 5, "loop": 2})
    with pytest.raises(VerbError, match="txt"):
        build_verb("say", {"txt": "hello", "loop": 2})
    assert build_verb("say", {"text": "hi", "loop": 2.0}) == {"verb": "say", "text": "hi", "loop": 2}


def test_a_string_where_a_union_allows_numbers_stays_a_string() -> None:
    assert build_verb("play", {"url": "a.wav", "loop": "3"})["loop"] == "3"
    assert build_verb("play", {"url": "b.wav", "loop": 3})["loop"] == 3


def test_a_cached_verb_is_a_new_dict_each_time() -> None:
    first = build_verb("say", {"text": "one"})
    first["text"] = "changed"
    assert build_verb("say", {"text": "one"}) == {"verb": "say", "text": "one"}


def test_say_close_on_stream_empty_is_refused_as_jambonz_0_9_8_refuses_it() -> None:
    """verb-specifications 0.1.13 (what 0.9.8 locks) knows only ``closeStreamOnEmpty`` and
    refuses unknown properties, though ``say.js`` ~80 reads ``closeOnStreamEmpty``."""
    with pytest.raises(VerbError, match="closeOnStreamEmpty"):
        normalize_verb({"verb": "say", "stream": True, "closeOnStreamEmpty": False})
    assert (
        normalize_verb({"verb": "say", "stream": True, "closeStreamOnEmpty": False})["closeStreamOnEmpty"]
        is False
    )


# -- loading the models (issue 18 item 4) ---------------------------------------------------------


def test_the_first_verb_loads_the_models_and_says_so_once() -> None:
    """A fresh process: the first validation loads the models (one INFO line), the next ones are
    free and silent, and an explicit load_models() afterwards does nothing."""
    code = (
        "import logging\n"
        "logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s')\n"
        "from jambonz_lab.protocol import verbs\n"
        "print(verbs.build_verb('say', {'text': 'hi'}))\n"
        "verbs.load_models(); print(verbs.build_verb('pause', {'length': 1}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.splitlines() == [
        "{'verb': 'say', 'text': 'hi'}",
        "{'verb': 'pause', 'length': 1}",
    ]
    logged = [line for line in out.stderr.splitlines() if "verb models" in line]
    assert logged == ["jambonz_lab.protocol loading verb models… (once per process)"]


def test_whole_number_properties_are_typed_int() -> None:
    """The schemas type gather's numDigits "number"; jambonz compares it with the digit count using ===
    (lib/tasks/gather.js ~413), so the generated signature says int (completion, mypy)."""
    gather = inspect.signature(VerbMethods.gather).parameters
    assert gather["numDigits"].annotation == "int | None"
    assert gather["maxDigits"].annotation == "int | None"
    assert gather["timeout"].annotation == "float | None"  # seconds stay float
    assert inspect.signature(VerbMethods.say).parameters["loop"].annotation == "int | str | None"
    assert build_verb("gather", {"numDigits": 4})["numDigits"] == 4


def test_a_say_needs_text_or_a_stream() -> None:
    """jambonz 0.9.8's say task asserts "Say: either text or stream:true is required"
    (lib/tasks/say.js ~71–72); the SDK's schema requires neither, so the check is ours."""
    for props in ({}, {"stream": False}, {"loop": 2}):
        with pytest.raises(VerbError, match=r"^say: missing required property 'text' \(or 'stream': true\)$"):
            build_verb("say", props)
    with pytest.raises(VerbError) as caught:
        normalize_verbs([{"verb": "say", "text": "ok"}, {"verb": "say"}])
    assert caught.value.property == "text"
    assert build_verb("say", {"stream": True}) == {"verb": "say", "stream": True}
    assert build_verb("say", {"text": ""}) == {"verb": "say", "text": ""}  # jambonz takes it too
    assert build_verb("say", {"text": ["a", "b"]})["text"] == ["a", "b"]
    # a gather's prompt is a say task too (lib/tasks/gather.js ~79–80: `if (this.say)`, and {} is truthy)
    with pytest.raises(
        VerbError, match=r"^gather: missing required property 'say.text' \(or 'say.stream': true\)$"
    ):
        build_verb("gather", {"input": ["digits"], "say": {}})
    assert build_verb("gather", {"input": ["digits"], "say": {"text": "Press 1"}})["say"] == {
        "text": "Press 1"
    }
