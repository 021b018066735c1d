"""``stringify``: Node's ``JSON.stringify`` text, numbers above all (ECMA-262 Number::toString)."""

from __future__ import annotations

import pytest

from jambonz_lab.protocol.jsjson import js_number, stringify


@pytest.mark.parametrize(
    ("x", "text"),
    [
        (1.0, "1"),
        (-2.0, "-2"),
        (-0.0, "0"),
        (0.92, "0.92"),
        (12.5, "12.5"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (2.5e-9, "2.5e-9"),
        (1e16, "10000000000000000"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e21, "1.5e+21"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (float("nan"), "null"),
        (float("-inf"), "null"),
    ],
)
def test_numbers_read_as_node_writes_them(x: float, text: str) -> None:
    assert js_number(x) == text


def test_a_payload_as_node_writes_it() -> None:
    payload = {
        "speech": {"alternatives": [{"confidence": 1.0, "transcript": 'é "hi"\n'}]},
        "n": [1, None, True],
    }
    assert (
        stringify(payload)
        == '{"speech":{"alternatives":[{"confidence":1,"transcript":"é \\"hi\\"\\n"}]},"n":[1,null,true]}'
    )


def test_a_value_json_cannot_write_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        stringify({"a": {1, 2}})
