"""CallScenario: the generic steps every platform simulator maps onto its wire events."""

from __future__ import annotations

import pytest

from jambonz_lab.platforms import CallScenario


def steps(s: CallScenario) -> list[tuple[float, str, str]]:
    return [(float(x.at), x.kind, x.leg) for x in s.steps()]


def test_answered_call_matches_kazoos_two_leg_order() -> None:
    assert steps(CallScenario(ring=2, talk=5)) == [
        (0.0, "create", "a"),
        (0.1, "create", "b"),
        (2.0, "answer", "b"),
        (2.0, "answer", "a"),
        (2.0, "bridge", "a"),
        (7.0, "destroy", "b"),
        (7.0, "destroy", "a"),
    ]


def test_caller_hangs_up_first_and_hold() -> None:
    s = CallScenario(ring=1, talk=4, hold=1, hangup_by="caller")
    assert steps(s)[-4:] == [
        (2.0, "hold", "a"),
        (3.0, "unhold", "a"),
        (5.0, "destroy", "a"),
        (5.0, "destroy", "b"),
    ]


def test_unanswered_call_and_causes() -> None:
    s = CallScenario(ring=3, answered=False)
    assert steps(s) == [
        (0.0, "create", "a"),
        (0.1, "create", "b"),
        (3.0, "destroy", "b"),
        (3.0, "destroy", "a"),
    ]
    assert (s.cause, s.cause_code, s.duration) == ("NO_ANSWER", 19, 3.0)
    busy = CallScenario(answered=False, hangup_cause="USER_BUSY")
    assert (busy.cause, busy.cause_code) == ("USER_BUSY", 17)
    assert (CallScenario().cause, CallScenario().cause_code, CallScenario().duration) == (
        "NORMAL_CLEARING",
        16,
        7.0,
    )
    assert CallScenario(hangup_cause="SOMETHING_ELSE").cause_code == 16


def test_zero_ring_keeps_time_order() -> None:
    ats = [x.at for x in CallScenario(ring=0, talk=0).steps()]
    assert ats == sorted(ats) and ats[1] == 0.0


def test_ids_are_fixed_by_the_seed() -> None:
    a1, a2, b = CallScenario(seed=7).rng("a"), CallScenario(seed=7).rng("a"), CallScenario(seed=8).rng("a")
    first = a1.random()
    assert first == a2.random() and first != b.random()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ring": -1}, "durations"),
        ({"talk": -0.5}, "durations"),
        ({"talk": 3, "hold": 2.5}, "inside the talk"),
    ],
)
def test_bad_scenarios_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CallScenario(**kwargs)  # type: ignore[arg-type]
