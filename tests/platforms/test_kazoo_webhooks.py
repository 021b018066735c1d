"""Kazoo webhooks over real loopback sockets (platforms.md §1.4, §1.6): the receiver mounted on a
real AppServer, raw aiohttp requests against it, and the Kazoo-side sender delivering to it (and
to small servers of our own that answer 201 / 500, or to a closed port)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Iterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from jambonz_lab import loop
from jambonz_lab.net.server import AppServer
from jambonz_lab.platforms.kazoo_webhooks import WebhookReceiver, WebhookSender
from jambonz_lab.protocol.kazoo_webhooks import WebhookConfig, channel_payload, to_querystring
from jambonz_lab.records import RECORD_FIELDS
from tests.fakejambonz import wait_until

ACCOUNT = "4b31dd1d32ce6d249897c06332375d65"
EVENT: dict[str, Any] = {
    "event_name": "CHANNEL_CREATE",
    "call_id": "leg-a",
    "other_leg_call_id": "leg-b",
    "call_direction": "inbound",
    "caller_id_name": "Alice & Bob",
    "caller_id_number": "+15556783945",
    "custom_channel_vars": {"account_id": ACCOUNT, "owner_id": "699e", "note": "é ?"},
    "from": "+15556783945@acme.example.com",
    "to": "2600@acme.example.com",
    "request": "2600@acme.example.com",
    "timestamp": 63610891956,
}


def run(coro: Awaitable[Any], timeout: float = 20.0) -> Any:
    """Run a coroutine on the lab's loop and wait for it."""

    async def wrap() -> Any:
        return await coro

    return loop.submit(wrap()).result(timeout)


def as_dicts(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        d = dict(zip(RECORD_FIELDS, row, strict=True))
        if isinstance(d["payload"], str):
            d["payload"] = json.loads(d["payload"])
        del d["ts"]
        out.append(d)
    return out


class Mounted:
    """A real AppServer on 127.0.0.1 with one receiver mounted; rows of the receiver only."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []
        self.server = AppServer()
        port = run(self.server.start("127.0.0.1", 0), 5)
        self.base = f"http://127.0.0.1:{port}"
        self.receiver = WebhookReceiver(record=self.rows.append, base_url=self.base)
        loop.run_sync(self.server.add_http, self.receiver.path, self.receiver.handle)

    def request(
        self, method: str, target: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, str]:
        async def go() -> tuple[int, str]:
            async with (
                aiohttp.ClientSession() as session,
                session.request(
                    method, URL(self.base + target, encoded=True), data=body, headers=headers or {}
                ) as resp,
            ):
                return resp.status, await resp.text()

        result: tuple[int, str] = run(go(), 5)
        return result

    def stop(self) -> None:
        run(self.server.stop(), 5)


@pytest.fixture
def mounted() -> Iterator[Mounted]:
    m = Mounted()
    try:
        yield m
    finally:
        m.stop()


class StatusServer:
    """A tiny HTTP server of our own that answers every request with ``status``."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.hits: list[tuple[str, str | None, float]] = []
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        self.hits.append((request.method, request.headers.get("X-Hook-ID"), time.monotonic()))
        return web.Response(status=self.status, text="nope")

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
def status_server(request: pytest.FixtureRequest) -> Iterator[StatusServer]:
    srv = StatusServer(getattr(request, "param", 500))
    run(srv.start(), 5)
    try:
        yield srv
    finally:
        run(srv.stop(), 5)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- receiver ------------------------------------------------------------------------------


class TestReceiver:
    def test_post_form(self, mounted: Mounted) -> None:
        payload = channel_payload("channel_create", EVENT, cluster_id="c1")
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Hook-ID": "hook1",
            "X-Account-ID": ACCOUNT,
        }
        assert mounted.request("POST", "/kazoo/hooks", to_querystring(payload).encode(), headers) == (200, "")
        assert as_dicts(mounted.rows) == [
            {
                "call_sid": "leg-a",
                "direction": "in",
                "type": "channel_create",
                "msgid": None,
                "hook": "hook1",
                "verbs": 0,
                "payload": {
                    "hook_event": "channel_create",
                    "account_id": ACCOUNT,
                    "call_direction": "inbound",
                    "call_forwarded": "false",
                    "call_id": "leg-a",
                    "caller_id_name": "Alice & Bob",
                    "caller_id_number": "+15556783945",
                    "custom_channel_vars": {"note": "é ?"},
                    "emergency_resource_used": "false",
                    "from": "+15556783945@acme.example.com",
                    "is_internal_leg": "false",
                    "local_resource_used": "true",
                    "other_leg_call_id": "leg-b",
                    "owner_id": "699e",
                    "request": "2600@acme.example.com",
                    "timestamp": "63610891956",
                    "to": "2600@acme.example.com",
                    "cluster_id": "c1",
                },
                "note": f"POST form-data account={ACCOUNT}",
                "path": "/kazoo/hooks",
                "source": "kazoo",
                "transport": None,
                "call_t": None,
            }
        ]
        assert mounted.receiver.received == 1

    def test_post_json(self, mounted: Mounted) -> None:
        payload = channel_payload("channel_create", EVENT, cluster_id="c1")
        headers = {"Content-Type": "application/json", "X-Hook-ID": "hook2"}
        body = json.dumps(payload, indent=2).encode()
        assert mounted.request("POST", "/kazoo/hooks", body, headers) == (200, "")
        (row,) = as_dicts(mounted.rows)
        assert row["payload"] == payload  # JSON keeps the types
        assert (row["type"], row["call_sid"], row["hook"], row["note"]) == (
            "channel_create",
            "leg-a",
            "hook2",
            "POST json",
        )

    def test_get_with_a_double_question_mark(self, mounted: Mounted) -> None:
        query = to_querystring({"hook_event": "channel_destroy", "call_id": "x y", "ccv": {"k": "v"}})
        status, body = mounted.request("GET", "/kazoo/hooks?token=abc?" + query, None, {"X-Hook-ID": "h3"})
        assert (status, body) == (200, "")
        (row,) = as_dicts(mounted.rows)
        assert row["payload"] == {
            "token": "abc",
            "hook_event": "channel_destroy",
            "call_id": "x y",
            "ccv": {"k": "v"},
        }
        assert (row["type"], row["call_sid"], row["note"], row["hook"]) == (
            "channel_destroy",
            "x y",
            "GET query",
            "h3",
        )

    def test_get_on_a_uri_ending_with_a_question_mark(self, mounted: Mounted) -> None:
        assert mounted.request("GET", "/kazoo/hooks??hook_event=parking&call_id=p")[0] == 200
        (row,) = as_dicts(mounted.rows)
        assert row["payload"] == {"hook_event": "parking", "call_id": "p"}

    def test_payload_without_hook_event_is_a_webhook_row(self, mounted: Mounted) -> None:
        assert (
            mounted.request(
                "PUT", "/kazoo/hooks", b"a=1", {"Content-Type": "application/x-www-form-urlencoded"}
            )[0]
            == 200
        )
        (row,) = as_dicts(mounted.rows)
        assert (row["type"], row["call_sid"], row["note"], row["payload"]) == (
            "webhook",
            None,
            "PUT form-data",
            {"a": "1"},
        )

    @pytest.mark.parametrize(
        ("ctype", "body", "reason"),
        [
            ("application/json", b"{not json",
             "bad JSON body: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
            ("application/json", b"[1, 2]", "JSON body must be an object, not list"),
            ("application/json", b"\xff\xfe", "bad JSON body:"),
            ("text/plain", b"hello", "unsupported content type 'text/plain' (form data or JSON expected)"),
        ],
    )  # fmt: skip
    def test_malformed_body_is_400_and_a_bad_frame_row(
        self, mounted: Mounted, ctype: str, body: bytes, reason: str
    ) -> None:
        status, text = mounted.request(
            "POST", "/kazoo/hooks", body, {"Content-Type": ctype, "X-Hook-ID": "hb"}
        )
        assert status == 400
        assert text.startswith(reason) and text.endswith("\n") and text.count("\n") == 1
        (row,) = as_dicts(mounted.rows)
        assert (row["direction"], row["type"], row["source"], row["hook"], row["path"]) == (
            "lab",
            "bad-frame",
            "kazoo",
            "hb",
            "/kazoo/hooks",
        )
        assert row["note"] == "POST: " + text.strip()
        assert row["payload"] == {"raw": body.decode("utf-8", "replace")}
        assert (mounted.receiver.received, mounted.receiver.rejected) == (0, 1)
        # the endpoint goes on
        ok = mounted.request(
            "POST", "/kazoo/hooks", b'{"hook_event":"channel_answer"}', {"Content-Type": "application/json"}
        )
        assert ok == (200, "")
        assert [r["type"] for r in as_dicts(mounted.rows)] == ["bad-frame", "channel_answer"]

    def test_body_on_get_is_refused(self, mounted: Mounted) -> None:
        status, text = mounted.request(
            "GET", "/kazoo/hooks", b"x=1", {"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert (status, text) == (400, "unexpected body on GET\n")


# -- sender → receiver -------------------------------------------------------------------------


def _events() -> list[tuple[str, dict[str, Any]]]:
    destroy = {
        **EVENT,
        "event_name": "CHANNEL_DESTROY",
        "hangup_cause": "NORMAL_CLEARING",
        "billing_seconds": "6",
    }
    return [("CHANNEL_CREATE", EVENT), ("CHANNEL_HOLD", EVENT), ("CHANNEL_DESTROY", destroy)]


@pytest.fixture
def sender() -> Iterator[WebhookSender]:
    s = WebhookSender(cluster_id="lab-cluster", retry_delay=0.2, check_every=0.05)
    try:
        yield s
    finally:
        s.close()


class TestSenderToReceiver:
    @pytest.mark.parametrize(
        ("verb", "fmt", "note"),
        [("post", "form-data", "POST form-data"), ("post", "json", "POST json"), ("get", "json", "GET query"),
         ("put", "json", "PUT json")],
    )  # fmt: skip
    def test_end_to_end(
        self, mounted: Mounted, sender: WebhookSender, verb: str, fmt: str, note: str
    ) -> None:
        uri = mounted.receiver.url + ("?token=t1" if verb == "get" else "")
        hook_id = sender.add_hook(name="calls", uri=uri, hook="all", http_verb=verb, format=fmt, id="h-e2e")
        for name, data in _events():
            run(sender.publish(name, data))
        run(sender.adrain())
        rows = as_dicts(mounted.rows)
        assert [r["type"] for r in rows] == [
            "channel_create",
            "channel_destroy",
        ]  # in order; no hook for HOLD
        assert [r["hook"] for r in rows] == [hook_id, hook_id]
        assert [r["note"] for r in rows] == [f"{note} account={ACCOUNT}"] * 2
        assert [r["call_sid"] for r in rows] == ["leg-a", "leg-a"]
        destroy = rows[1]["payload"]
        if fmt == "json" and verb != "get":
            assert destroy == channel_payload("channel_destroy", _events()[2][1], cluster_id="lab-cluster")
            assert destroy["billing_seconds"] == 6
        else:  # form data and GET: strings only
            assert destroy["billing_seconds"] == "6"
            assert destroy["call_forwarded"] == "false"
            assert destroy["custom_channel_vars"] == {"note": "é ?"}
        assert destroy["timestamp"] == "63610891956"
        assert destroy["cluster_id"] == "lab-cluster"
        if verb == "get":
            assert destroy["token"] == "t1"
        assert [(d["hook"], d["attempt"], d["status"], d["error"]) for d in sender.deliveries] == [
            (hook_id, 1, 200, None)
        ] * 2

    def test_only_matching_enabled_hooks_fire_with_custom_data(
        self, mounted: Mounted, sender: WebhookSender
    ) -> None:
        sender.add_hook(
            WebhookConfig(
                "c",
                mounted.receiver.url,
                "channel_create",
                id="hc",
                custom_data={"type": "x", "team": "blue"},
            )
        )
        sender.add_hook(name="d", uri=mounted.receiver.url, hook="channel_destroy", id="hd", enabled=False)
        sender.add_hook(name="o", uri=mounted.receiver.url, hook="object", id="ho")
        sender.add_hook(name="other", uri=mounted.receiver.url, hook="all", id="hx", account_id="another")
        for name, data in _events():
            run(sender.publish(name, data))
        run(sender.adrain())
        rows = as_dicts(mounted.rows)
        assert [(r["type"], r["hook"]) for r in rows] == [("channel_create", "hc")]
        assert rows[0]["payload"]["team"] == "blue" and "type" not in rows[0]["payload"]


# -- retries, failures, the disabler ------------------------------------------------------------


class TestRetries:
    def test_connection_refused_is_retried_retries_times_delay_apart(self, sender: WebhookSender) -> None:
        uri = f"http://127.0.0.1:{closed_port()}/hook"
        sender.add_hook(name="dead", uri=uri, hook="all", retries=3, id="dead")
        run(sender.publish("CHANNEL_CREATE", EVENT))
        run(sender.adrain())
        tries = sender.deliveries
        assert [(d["hook"], d["attempt"], d["status"]) for d in tries] == [
            ("dead", 1, None),
            ("dead", 2, None),
            ("dead", 3, None),
        ]
        assert all(d["error"].startswith("ClientConnectorError") for d in tries)
        gaps = [b["ts"] - a["ts"] for a, b in zip(tries, tries[1:], strict=False)]
        assert all(0.19 <= g < 0.6 for g in gaps), gaps

    def test_retries_are_clamped_to_five(self) -> None:
        fast = WebhookSender(retry_delay=0.0)
        try:
            fast.add_hook(name="dead", uri=f"http://127.0.0.1:{closed_port()}/", hook="all", retries=50)
            run(fast.publish("CHANNEL_CREATE", EVENT))
            run(fast.adrain())
            assert [d["attempt"] for d in fast.deliveries] == [1, 2, 3, 4, 5]
        finally:
            fast.close()

    def test_500_is_not_retried(self, sender: WebhookSender, status_server: StatusServer) -> None:
        sender.add_hook(name="five", uri=status_server.url, hook="all", retries=3, id="h500")
        run(sender.publish("CHANNEL_CREATE", EVENT))
        run(sender.adrain())
        assert [(m, h) for m, h, _ in status_server.hits] == [("POST", "h500")]
        assert [(d["attempt"], d["status"], d["error"]) for d in sender.deliveries] == [(1, 500, None)]

    @pytest.mark.parametrize("status_server", [201], indirect=True)
    def test_201_is_success_for_put_only(self, status_server: StatusServer) -> None:
        s = WebhookSender(failure_limit=1, check_every=60.0)
        try:
            s.add_hook(name="p", uri=status_server.url, hook="all", http_verb="put", id="put")
            s.add_hook(name="q", uri=status_server.url, hook="all", http_verb="post", id="post")
            run(s.publish("CHANNEL_CREATE", EVENT))
            run(s.adrain())
            assert sorted((m, h) for m, h, _ in status_server.hits) == [("POST", "post"), ("PUT", "put")]
            assert loop.run_sync(s.check) == ["post"]
        finally:
            s.close()


class TestDisabler:
    def test_sixth_failure_within_the_window_disables_the_hook(
        self, sender: WebhookSender, status_server: StatusServer
    ) -> None:
        rows: list[tuple[Any, ...]] = []
        sender.record = rows.append
        sender.add_hook(name="bad", uri=status_server.url, hook="all", retries=1, id="bad")
        for _ in range(5):
            run(sender.publish("CHANNEL_CREATE", EVENT))
        run(sender.adrain())
        time.sleep(0.2)  # several checks ran: 5 failures are not enough
        assert sender.hooks[0]["enabled"] is True
        run(sender.publish("CHANNEL_CREATE", EVENT))
        run(sender.adrain())
        wait_until(lambda: not sender.hooks[0]["enabled"], 2.0)
        assert sender.hooks[0]["disable_reason"] == "too many failed attempts"
        assert [(r[3], r[5], r[8]) for r in rows] == [("hook-disabled", "bad", "too many failed attempts")]
        assert len(status_server.hits) == 6
        run(sender.publish("CHANNEL_CREATE", EVENT))  # a disabled hook gets nothing
        run(sender.adrain())
        assert len(status_server.hits) == 6
        sender.enable("bad")
        assert "disable_reason" not in sender.hooks[0] and sender.hooks[0]["enabled"] is True
        run(sender.publish("CHANNEL_CREATE", EVENT))
        run(sender.adrain())
        assert len(status_server.hits) == 7

    def test_failures_outside_the_window_do_not_add_up(self, status_server: StatusServer) -> None:
        s = WebhookSender(failure_window=0.3, check_every=0.05)
        try:
            s.add_hook(name="bad", uri=status_server.url, hook="all", retries=1)
            for _ in range(2):
                for _ in range(4):
                    run(s.publish("CHANNEL_CREATE", EVENT))
                run(s.adrain())
                time.sleep(0.4)
            assert len(status_server.hits) == 8
            assert s.hooks[0]["enabled"] is True
        finally:
            s.close()

    def test_transport_errors_count_once_per_attempt(self) -> None:
        s = WebhookSender(retry_delay=0.0, check_every=0.05)
        try:
            s.add_hook(name="dead", uri=f"http://127.0.0.1:{closed_port()}/", hook="all", retries=3)
            run(s.publish("CHANNEL_CREATE", EVENT))
            run(s.publish("CHANNEL_ANSWER", EVENT))
            run(s.adrain())
            assert len(s.deliveries) == 6
            wait_until(lambda: not s.hooks[0]["enabled"], 2.0)
        finally:
            s.close()

    def test_publish_does_not_wait_for_delivery(self, sender: WebhookSender) -> None:
        sender.add_hook(name="dead", uri=f"http://127.0.0.1:{closed_port()}/", hook="all", retries=3)

        async def timed() -> float:
            t0 = asyncio.get_running_loop().time()
            await sender.publish("CHANNEL_CREATE", EVENT)
            return asyncio.get_running_loop().time() - t0

        assert run(timed()) < 0.05
        run(sender.adrain())
        assert len(sender.deliveries) == 3


SECRET = "s3cr&t?=x"  # characters that need quoting in a URL


@pytest.fixture
def guarded() -> Iterator[Mounted]:
    m = Mounted()
    m.receiver = WebhookReceiver("/guarded", record=m.rows.append, base_url=m.base, secret=SECRET)
    loop.run_sync(m.server.add_http, m.receiver.path, m.receiver.handle)
    try:
        yield m
    finally:
        m.stop()


class TestSharedSecret:
    """Issue 11 item 4: Kazoo signs no webhook, so a receiver may require a shared secret."""

    @pytest.mark.parametrize(("verb", "fmt"), [("post", "form-data"), ("post", "json"), ("get", "json")])
    def test_secret_in_the_url_is_accepted_and_never_recorded(
        self, guarded: Mounted, sender: WebhookSender, verb: str, fmt: str
    ) -> None:
        assert guarded.receiver.url == f"{guarded.base}/guarded?lab_secret=s3cr%26t%3F%3Dx"
        sender.add_hook(name="calls", uri=guarded.receiver.url, hook="all", http_verb=verb, format=fmt)
        for name, data in _events():
            run(sender.publish(name, data))
        run(sender.adrain())
        rows = as_dicts(guarded.rows)
        assert [r["type"] for r in rows] == ["channel_create", "channel_destroy"]
        assert all("lab_secret" not in r["payload"] for r in rows)
        assert SECRET not in json.dumps(rows) and "s3cr%26t" not in json.dumps(rows)

    def test_secret_in_custom_data_is_accepted(self, guarded: Mounted, sender: WebhookSender) -> None:
        sender.add_hook(
            name="calls",
            uri=f"{guarded.base}/guarded",
            hook="all",
            format="json",
            custom_data={"lab_secret": SECRET},
        )
        run(sender.publish("CHANNEL_CREATE", EVENT))
        run(sender.adrain())
        rows = as_dicts(guarded.rows)
        assert [r["type"] for r in rows] == ["channel_create"] and "lab_secret" not in rows[0]["payload"]

    @pytest.mark.parametrize(
        "target",
        [
            "/guarded",
            "/guarded?lab_secret=wrong",
            "/guarded?lab_secret=",
            "/guarded?other=1?lab_secret=s3cr%26t%3F%3Dx",
        ],
        ids=["none", "wrong", "empty", "only-in-kazoos-own-query"],
    )
    def test_forged_hooks_get_401_and_are_not_events(self, guarded: Mounted, target: str) -> None:
        woken = guarded.receiver.wait_for("channel_create", timeout=1)
        body = to_querystring({"hook_event": "channel_create", "call_id": "forged", "account_id": ACCOUNT})
        status, text = guarded.request(
            "POST", target, body.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert (status, text) == (401, "missing or wrong lab_secret\n")
        rows = as_dicts(guarded.rows)
        assert [(r["direction"], r["type"], r["note"]) for r in rows] == [
            ("lab", "auth-failed", "POST: missing or wrong lab_secret (401)")
        ]
        assert guarded.receiver.received == 0 and guarded.receiver.rejected == 1
        with pytest.raises(TimeoutError):
            woken.result()
        assert guarded.request("POST", "/guarded?lab_secret=s3cr%26t%3F%3Dx", body.encode(), {
            "Content-Type": "application/x-www-form-urlencoded"})[0] == 200  # fmt: skip

    def test_a_broken_body_preview_hides_the_secret(self, guarded: Mounted) -> None:
        status, _ = guarded.request("OPTIONS", "/guarded?lab_secret=s3cr%26t%3F%3Dx")
        assert status == 400
        assert "s3cr" not in json.dumps(as_dicts(guarded.rows))

    def test_empty_secret_is_refused(self) -> None:
        with pytest.raises(ValueError, match="non-empty string"):
            WebhookReceiver(secret="")
