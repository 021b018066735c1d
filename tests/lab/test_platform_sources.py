"""Platform sources in a lab: rows with a ``source`` column, per-platform tables, the sources
widget's state and the platform timeline — with the Kazoo simulator over real loopback sockets
(blackhole websocket and webhooks posted to the lab's own HTTP server)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import jambonz_lab as jl
from jambonz_lab.lab.timeline import TimelineFigure
from jambonz_lab.platforms import CallScenario
from jambonz_lab.platforms.kazoo_sim import DEFAULT_AUTH_TOKEN, KazooSimulator
from jambonz_lab.platforms.kazoo_webhooks import WebhookSender
from tests.lab.apps import three_platforms_played

NAME = "<img src=x onerror=alert(1)>"


@pytest.fixture
def kazoo() -> Iterator[KazooSimulator]:
    with KazooSimulator() as sim:
        yield sim


def play_kazoo_call(lab: jl.Lab, sim: KazooSimulator) -> tuple[Any, WebhookSender]:
    """Watch the sim, receive its webhooks, play one answered call; returns (client, sender)."""
    client = lab.kazoo(
        sim.ws_url, auth_token=sim.auth_token, account_id=sim.account_id, bindings=["call.*.*"]
    )
    receiver = lab.kazoo_webhooks("/hooks")
    sender = WebhookSender(retry_delay=0.05)
    sender.add_hook(uri=receiver.url, hook="all", format="form-data", name="lab")
    sim.webhooks = sender
    ended = client.wait_for("CHANNEL_DESTROY", count=2)
    posted = receiver.wait_for("channel_destroy", count=2)
    sim.play(CallScenario(seed=3, caller_name=NAME, ring=1, talk=2), time_scale=0).result()
    ended.result(timeout=10)
    assert posted.result(timeout=10).source == "kazoo"
    sender.drain()
    return client, sender


def test_events_carry_their_source_and_stay_out_of_jambonz_views(lab: jl.Lab, kazoo: KazooSimulator) -> None:
    client, sender = play_kazoo_call(lab, kazoo)
    try:
        events = lab.events
        assert set(events["source"]) == {"kazoo"}
        blackhole = events[(events["source"] == "kazoo") & (events["path"] == client.url_for_log)]
        names = list(blackhole[blackhole["direction"] == "in"]["type"])
        assert names[0] == "reply"
        assert names[1:] == [
            "CHANNEL_CREATE",
            "CHANNEL_CREATE",
            "CHANNEL_ANSWER",
            "CHANNEL_ANSWER",
            "CHANNEL_BRIDGE",
            "CHANNEL_DESTROY",
            "CHANNEL_DESTROY",
        ]
        hooks = events[events["path"] == "/hooks"]
        assert list(hooks["type"]) == [
            "channel_create",
            "channel_create",
            "channel_answer",
            "channel_answer",
            "channel_bridge",
            "channel_destroy",
            "channel_destroy",
        ]
        assert lab.calls.empty and lab.hooks.empty and lab.statuses.empty  # jambonz views: jambonz rows only
    finally:
        sender.close()


def test_platform_table_lines_up_blackhole_and_webhooks(lab: jl.Lab, kazoo: KazooSimulator) -> None:
    _, sender = play_kazoo_call(lab, kazoo)
    try:
        table = lab.platform_events("kazoo")
        assert len(table) == 14  # 7 blackhole frames + 7 webhook posts; the subscribe reply is left out
        via_ws = table[table["path"] != "/hooks"]
        via_hook = table[table["path"] == "/hooks"]
        cols = ["name", "call_id", "other_leg_call_id", "call_direction", "hangup_cause"]
        assert via_ws[cols].reset_index(drop=True).equals(via_hook[cols].reset_index(drop=True))
        destroy = via_ws[via_ws["name"] == "CHANNEL_DESTROY"]
        assert set(destroy["hangup_cause"]) == {"NORMAL_CLEARING"}
        assert str(table["event_ts"].dt.tz) == "UTC"
        a_leg = via_ws.iloc[0]["call_id"]
        assert set(via_ws["call_id"]) == set(via_ws["other_leg_call_id"].dropna()) | {a_leg}
        with pytest.raises(ValueError, match="unknown platform 'asterisk'"):
            lab.platform_events("asterisk")
        assert repr(lab).endswith("0 call(s), 2 platform source(s)>")  # the blackhole client and the receiver
    finally:
        sender.close()


def test_sources_widget_state(lab: jl.Lab, kazoo: KazooSimulator) -> None:
    panel = jl.sources(lab)
    _, sender = play_kazoo_call(lab, kazoo)
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(panel.events) < 15:  # the hub flushes every 150 ms
            time.sleep(0.05)
        conns = {(c["source"], c["path"]): c for c in panel.connections}
        ws = next(c for (s, p), c in conns.items() if p != "/hooks")
        assert ws["state"] == "open" and ws["events"] == 7 and ws["errors"] == 0
        assert conns[("kazoo", "/hooks")]["state"] == "receiving"
        assert panel.live == 0 and len(panel.calls) == 2
        assert {c["status"] for c in panel.calls} == {"CHANNEL_DESTROY NORMAL_CLEARING"}
        assert {c["from"] for c in panel.calls} == {"+15550100"}
        assert panel.events[0]["type"] in ("channel_destroy", "CHANNEL_DESTROY")
        assert panel.events[-1]["time"]
        assert jl.sources(lab) is panel
        assert jl.panel(lab).sources is panel  # the lab panel shows the sources too
        assert panel in jl.panel(lab).children
        data, _ = panel._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in data
        assert "kazoo" in data["text/html"] and "live calls 0" in data["text/html"]  # viewers without widgets
    finally:
        sender.close()


def test_platform_timeline_has_a_lane_per_leg(lab: jl.Lab, kazoo: KazooSimulator) -> None:
    _, sender = play_kazoo_call(lab, kazoo)
    try:
        fig = lab.platform_timeline()
        ax = fig.axes[0]
        lanes = [t.get_text() for t in ax.get_yticklabels()]
        assert len(lanes) == 2 and all(lane.startswith("kazoo · ") for lane in lanes)
        labels = [t.get_text() for t in ax.texts if t.get_gid() == "label"]
        assert labels.count("CHANNEL_DESTROY NORMAL_CLEARING") == 2
        assert isinstance(fig, TimelineFigure)
        assert len(fig._repr_png_()) > 1000
        with pytest.raises(ValueError, match="no call events"):
            lab.platform_timeline(sources=("wazo",))
    finally:
        sender.close()


def test_one_lab_watches_all_three_platforms(lab: jl.Lab) -> None:
    """Kazoo, Basix and Wazo simulators play the same calls; one log, one table per platform."""
    with three_platforms_played(lab) as (_, cti, _):
        sources = set(lab.events["source"])
        assert sources == {"kazoo", "basix", "wazo"}
        kazoo_table = lab.platform_events("kazoo")
        assert kazoo_table["name"].value_counts()["CHANNEL_DESTROY"] == 6
        assert set(kazoo_table["hangup_cause"].dropna()) == {"NORMAL_CLEARING", "NO_ANSWER"}
        basix_table = lab.platform_events("basix")
        assert set(basix_table["event"]) >= {"added", "updated", "removed"}
        assert basix_table[basix_table["event"] == "removed"]["uuid"].nunique() == 6
        wazo_table = lab.platform_events("wazo")
        ended = wazo_table[wazo_table["name"] == "call_ended"]
        assert sorted(ended["reason_code"].dropna().astype(int)) == [16, 16, 16, 16, 19, 19]
        assert str(wazo_table["reason_code"].dtype) == "Int64"  # 19, not 19.0 (rows without one are <NA>)
        assert wazo_table["reason_code"].isna().any() and "19.0" not in wazo_table.to_string()
        assert cti.channels.empty  # every channel was removed
        fig = lab.platform_timeline()
        lanes = [t.get_text().split(" · ")[0] for t in fig.axes[0].get_yticklabels()]
        assert {lane: lanes.count(lane) for lane in set(lanes)} == {"kazoo": 6, "basix": 6, "wazo": 6}


def test_platform_rows_survive_in_the_jsonl_log(tmp_path: Any) -> None:
    path = tmp_path / "calls.jsonl"
    lab = jl.start(log_path=path)
    try:
        with KazooSimulator() as sim:
            client = lab.kazoo(
                sim.ws_url, auth_token=sim.auth_token, account_id=sim.account_id, bindings=["call.*.*"]
            )
            done = client.wait_for("CHANNEL_DESTROY", count=2)
            sim.play(CallScenario(seed=5), time_scale=0).result()
            done.result(timeout=10)
            live = lab.platform_events("kazoo")
    finally:
        lab.stop()
    logged = jl.read_log(path)
    again = logged.platform("kazoo")
    cols = ["type", "call_sid", "name", "call_id", "other_leg_call_id", "hangup_cause", "event_ts"]
    assert again[cols].equals(live[cols])
    assert set(logged.events["source"]) == {"kazoo"}
    assert DEFAULT_AUTH_TOKEN not in path.read_text()  # the token is never recorded


def test_a_lab_panel_shown_before_any_source_gains_the_sources_widget(
    lab: jl.Lab, kazoo: KazooSimulator
) -> None:
    panel = jl.panel(lab)
    assert panel.sources is None and len(panel.children) == 2
    _, sender = play_kazoo_call(lab, kazoo)
    try:
        deadline = time.monotonic() + 5
        while panel.sources is None and time.monotonic() < deadline:  # the hub's next flush adds it
            time.sleep(0.05)
        assert panel.sources is jl.sources(lab)
        assert [type(c).__name__ for c in panel.children] == ["PanelHeader", "VBox", "SourcesPanel"]
    finally:
        sender.close()


def test_watch_giving_up_stops_the_background_connect(lab: jl.Lab) -> None:
    """Issue 11 item 7: a server that answers the upgrade after 1 s; ``lab.watch(..., timeout=0.3)``
    raises naming the URL, and the attempt is over (before: it connected later, unseen)."""
    import asyncio

    from websockets.asyncio.server import ServerConnection, serve

    from jambonz_lab import loop
    from jambonz_lab.platforms import SourceState
    from jambonz_lab.platforms.kazoo import KazooClient

    handled: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        handled.append(ws)
        await ws.wait_closed()

    async def slow(conn: ServerConnection, request: Any) -> None:
        await asyncio.sleep(1.0)

    async def start() -> Any:
        return await serve(handler, "127.0.0.1", 0, process_request=slow)

    server = loop.submit(start()).result(5)
    url = f"ws://127.0.0.1:{next(iter(server.sockets)).getsockname()[1]}/"
    try:
        client = KazooClient(url, auth_token="t", account_id="a")
        with pytest.raises(jl.PlatformError, match=r"kazoo at .* did not answer within 0.3 s: the lab was"):
            lab.watch(client, timeout=0.3)
        time.sleep(1.5)
        assert handled == [] and client.connections == 0 and client.state is SourceState.CLOSED
        failed = lab.events[lab.events["type"] == "connect-failed"]
        assert list(failed["source"]) == ["kazoo"]
    finally:
        loop.call_soon(server.close)
