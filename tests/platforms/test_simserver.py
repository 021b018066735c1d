"""SimServer: a call ended by a command stops its play early, on every simulator (real clock)."""

from __future__ import annotations

import time
from typing import Any

from jambonz_lab.platforms import (
    BasixClient,
    BasixSimulator,
    CallScenario,
    KazooClient,
    KazooRest,
    KazooSimulator,
    WazoCalld,
    WazoClient,
    WazoSimulator,
)

LONG = CallScenario(seed=41, caller="+15550141", callee="1001", ring=0.2, talk=60)


def ended_early(play: Any, hang_up: Any) -> float:
    """Hang up once answered; return how long the 60-s play still took."""
    hang_up()
    began = time.monotonic()
    play.result(timeout=10)
    return time.monotonic() - began


def test_kazoo_rest_hangup_ends_the_play() -> None:
    with KazooSimulator() as sim:
        client = KazooClient(
            sim.ws_url, auth_token=sim.auth_token, account_id=sim.account_id, bindings=["call.*.*"]
        )
        client.connect()
        answered = client.wait_for("CHANNEL_BRIDGE", timeout=5)
        play = sim.play(LONG, time_scale=1)
        uuid = answered.result().call_id
        assert uuid is not None
        rest = KazooRest(sim.http_url, sim.auth_token)
        try:
            took = ended_early(play, lambda: rest.channel_command(sim.account_id, uuid, "hangup"))
        finally:
            rest.close()
            client.close()
    assert took < 5


def test_basix_hangup_command_ends_the_play() -> None:
    with BasixSimulator() as sim:
        cti = BasixClient(sim.ws_url, app_name="lab", domain="example", token="secret", full_events=True)
        cti.connect()
        bridged = cti.wait_for(
            lambda e: e.type == "channel.updated" and e.data["element"]["answer_timestamp"]
        )
        play = sim.play(LONG, time_scale=1)
        uuid = bridged.result(timeout=5).call_id
        assert uuid is not None
        removed = cti.wait_for("channel.removed", count=2, timeout=5)
        took = ended_early(play, lambda: cti.hangup(uuid))
        removed.result()
        assert cti.channels.empty
        cti.close()
    assert took < 5


def test_wazo_calld_hangup_ends_the_play() -> None:
    with WazoSimulator() as sim:
        alice = WazoClient(sim.http_url, username="alice", password="alice-pw")
        alice.connect()
        answered = alice.wait_for("call_answered", timeout=5)
        play = sim.play(LONG, time_scale=1)
        call_id = answered.result().call_id
        assert call_id is not None
        ended = alice.wait_for("call_ended", timeout=5)
        took = ended_early(play, lambda: WazoCalld(sim.http_url, alice).hangup(call_id))
        assert ended.result().data["call_id"] == call_id
        alice.close()
    assert took < 5
