"""The Wazo simulator against a client nobody here wrote: ``WebSocketClient`` of ``@wazo/sdk`` 0.44.x.

A module fixture fetches the package tarball with ``npm pack`` (``npm install`` would fail offline:
the package depends on a GitHub-hosted ``getstats``) and installs ``ws`` for Node 20, which has no
global ``WebSocket``. The SDK's self-contained bundle ``dist/wazo-sdk.js`` loads in Node. The only
shim: the SDK always builds a ``wss://`` URL, and the simulator speaks plain ``ws://`` on loopback,
so the test subclass rewrites the scheme in ``_getUrl``. The Node program prints what the SDK emits
as JSON lines.

Skipped when ``node`` or ``npm`` is missing.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jambonz_lab.platforms.scenario import CallScenario
from jambonz_lab.platforms.wazo_sim import WazoSimulator

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are not on PATH",
)

PACKAGE = "@wazo/sdk@0.44"  # the latest 0.44.x

PROGRAM = r"""
global.WebSocket = require('ws');
const {WebSocketClient, SOCKET_EVENTS} = require('./package/dist/wazo-sdk.js');
const [port, token, renewal] = process.argv.slice(2);
const log = (o) => console.log(JSON.stringify(o));
class Local extends WebSocketClient {
  _getUrl() { return super._getUrl().replace('wss://', 'ws://'); }  // the simulator is plain ws
}
const client = new Local({host: `127.0.0.1:${port}`, token, events: ['*'], version: 2},
                         {WebSocket: require('ws'), maxRetries: 0});
client.on(SOCKET_EVENTS.INITIALIZED, () => {
  log({event: 'initialized'});
  if (renewal) client.updateToken(renewal);
  client.pingServer();
});
client.on(SOCKET_EVENTS.ON_AUTH_FAILED, () => log({event: 'on_auth_failed'}));
client.on(SOCKET_EVENTS.ON_CLOSE, (e) => {
  log({event: 'close', code: e.code});
  setTimeout(() => process.exit(0), 100);  // let on_auth_failed (emitted after onclose) print
});
client.on('pong', (data) => log({event: 'pong', data}));
for (const name of ['call_created', 'call_updated', 'call_answered', 'call_ended']) {
  client.on(name, (body) => log({event: name, call_id: body.data.call_id, status: body.data.status,
                                 reason_code: body.data.reason_code}));
}
client.connect();
setTimeout(() => process.exit(3), 15000);
"""


@pytest.fixture(scope="module")
def sdk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wazo-sdk")
    for command in (
        ["npm", "pack", "--silent", PACKAGE],
        ["npm", "install", "--no-audit", "--no-fund", "ws@8"],
    ):
        proc = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=180)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{proc.stdout}\n{proc.stderr}")
    tarball = next(root.glob("wazo-sdk-0.44.*.tgz"))
    subprocess.run(["tar", "xzf", tarball.name], cwd=root, check=True, timeout=60)
    (root / "peer.js").write_text(PROGRAM)
    return root


@pytest.fixture
def sim() -> Iterator[WazoSimulator]:
    server = WazoSimulator()
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Peer:
    """The Node program: its stdout lines as dicts, read on a thread."""

    def __init__(self, root: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            ["node", "peer.js", *args], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("the @wazo/sdk peer printed nothing in time") from None

    def until(self, event: str, timeout: float = 10.0) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not seen or seen[-1]["event"] != event:
            seen.append(self.next(max(deadline - time.monotonic(), 0.01)))
        return seen

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        self.thread.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def test_the_sdk_gets_events_pong_and_renews(sdk_dir: Path, sim: WazoSimulator) -> None:
    token, renewal = sim.issue_token("alice"), sim.issue_token("alice")
    peer = Peer(sdk_dir, str(sim.port), token, renewal)
    try:
        assert peer.until("initialized")[-1] == {"event": "initialized"}
        assert peer.until("pong") == [{"event": "pong", "data": {"payload": "pong"}}]
        sim.play(CallScenario(seed=21, caller="1001", callee="1002"), 0).result()
        seen = peer.until("call_ended")
        assert [(s["event"], s["status"]) for s in seen] == [
            ("call_created", "Ring"),
            ("call_updated", "Ring"),
            ("call_answered", "Up"),
            ("call_ended", "Up"),
        ]
        assert seen[-1]["reason_code"] == 16
        assert sim.open_sockets == 1  # the renewal (op:token) was accepted
    finally:
        peer.stop()


def test_the_sdk_reports_auth_failed_on_4002(sdk_dir: Path, sim: WazoSimulator) -> None:
    peer = Peer(sdk_dir, str(sim.port), "not-a-token", "")
    try:
        assert peer.until("close") == [{"event": "close", "code": 4002}]
        assert peer.next() == {"event": "on_auth_failed"}  # the SDK's own reading of 4002
    finally:
        peer.stop()
