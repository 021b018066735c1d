"""The simulator against apps written with a library nobody here wrote: ``@jambonz/node-client-ws``.

A session-scoped fixture installs the latest 0.2.x of the package with npm into a temp dir;
each app below is a small Node program (written there as a string) started with ``node`` on
a free loopback port and killed at teardown. The apps print what their session sees as JSON
lines on stdout, so a test can check both sides.

The clock against an external app: the simulator's virtual clock still runs the *call*
(a ``say`` of six words, a 10 s gather timeout, a ringing B-leg take no real time and
advance virtual time by their length), but every wait *on the app* is real, because the
app is a real process: the round trip of each ack, the ack timeout when the app never
answers (1 s here: ``SimOptions(ack_timeout=1.0)``), and the wait for a command while the
stack is empty (``idle_wait`` real seconds, then the clock jumps to the caller's hangup).
The real time those waits take is added to the virtual clock, so durations are the
scripted ones plus a few milliseconds per round trip.

Skipped when ``node`` or ``npm`` is missing (CI installs both in ``.ci/run``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jambonz_lab import sim
from jambonz_lab.sim import Caller, CallResult, DialOutcome, SimOptions, Speech
from tests.fakejambonz import wait_until

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or shutil.which("npm") is None,
    reason="node and npm are not on PATH (CI installs them in .ci/run)",
)

PACKAGE = "@jambonz/node-client-ws@0.2"  # the latest 0.2.x
OPTIONS = SimOptions(ack_timeout=1.0, idle_wait=0.3)

PREAMBLE = """
const {createServer} = require('http');
const {createEndpoint} = require('@jambonz/node-client-ws');
const port = Number(process.argv[2]);
const server = createServer();
const makeService = createEndpoint({server, port});
const log = (o) => console.log(JSON.stringify(o));
const watch = (session) => {
  log({event: 'session:new', call_sid: session.call_sid, from: session.from});
  session.on('call:status', (d) => log({event: 'call:status', call_sid: d.call_sid, status: d.call_status,
    error: d.error}));
  session.on('jambonz:error', (d) => log({event: 'jambonz:error', data: d}));
  session.on('close', (code) => log({event: 'close', code}));
};
"""

APPS = {
    "hello": """
makeService({path: '/hello'}).on('session:new', (session) => {
  watch(session);
  session.say({text: 'Hello from node client ws'}).hangup().send();
});
""",
    "gather-echo": """
const ask = (session, text) => session.gather({input: ['speech'], actionHook: '/echo', timeout: 10,
  say: {text}});
makeService({path: '/echo'}).on('session:new', (session) => {
  watch(session);
  session.on('/echo', (evt) => {
    log({event: '/echo', reason: evt.reason});
    if (evt.reason === 'speechDetected') {
      ask(session.say({text: `You said: ${evt.speech.alternatives[0].transcript}`}), 'Anything else?');
    } else {
      session.say({text: 'Goodbye'}).hangup();
    }
    session.reply();
  });
  ask(session, 'Say something').send();
});
""",
    "dial": """
makeService({path: '/dial'}).on('session:new', (session) => {
  watch(session);
  session.on('/dial-result', (evt) => {
    log({event: '/dial-result', dial_call_status: evt.dial_call_status});
    session.say({text: `Dial ${evt.dial_call_status}`}).hangup().reply();
  });
  session
    .say({text: 'Connecting you'})
    .dial({callerId: '+15550001111', actionHook: '/dial-result',
      target: [{type: 'phone', number: '+15551234567'}]})
    .send();
});
""",
    "forgets-reply": """
makeService({path: '/forget'}).on('session:new', (session) => {
  watch(session);
  session.on('/echo', (evt) => {
    log({event: '/echo', reason: evt.reason});  /* no session.reply(): jambonz waits for the ack */
  });
  session.gather({input: ['speech'], actionHook: '/echo', say: {text: 'Say something'}})
    .say({text: 'Moving on'})
    .send();
});
""",
}


@pytest.fixture(scope="session")
def ncw_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temp dir with @jambonz/node-client-ws installed by npm."""
    root = tmp_path_factory.mktemp("ncw")
    (root / "package.json").write_text(json.dumps({"name": "ncw-peer-apps", "private": True}))
    proc = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", PACKAGE],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"npm install {PACKAGE} failed:\n{proc.stdout}\n{proc.stderr}")
    return root


class NodeApp:
    """One Node app process listening on ``port``; its stdout is a file of JSON lines."""

    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.port = _free_port()
        script = root / f"{name}.js"
        script.write_text(PREAMBLE + APPS[name])
        self.out = root / f"{name}.{self.port}.log"
        with self.out.open("w") as out:
            self.proc = subprocess.Popen(
                ["node", str(script), str(self.port)], cwd=root, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 15
        while not _listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"node app {name} did not start:\n{self.out.read_text()}")
            time.sleep(0.05)

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def events(self) -> list[dict[str, Any]]:
        lines = self.out.read_text().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def events_after_close(self) -> list[dict[str, Any]]:
        """The app's events once its session saw the socket close (stdout is asynchronous)."""
        wait_until(lambda: any(e["event"] == "close" for e in self.events()), timeout=5)
        return self.events()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def node_app(ncw_dir: Path) -> Iterator[Callable[[str], NodeApp]]:
    """Start Node apps by name; every process is killed at teardown."""
    apps: list[NodeApp] = []

    def start(name: str) -> NodeApp:
        app = NodeApp(ncw_dir, name)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] for e in events]


def sent_at(result: CallResult, type: str) -> list[float]:
    return [e.t for e in result.messages("sent", type)]


def test_installed_version_is_0_2(ncw_dir: Path) -> None:
    """The fixture installed a 0.2.x release."""
    manifest = ncw_dir / "node_modules" / "@jambonz" / "node-client-ws" / "package.json"
    assert json.loads(manifest.read_text())["version"].startswith("0.2.")


def test_hello_says_and_hangs_up(node_app: Callable[[str], NodeApp]) -> None:
    """say + hangup: heard once, answered, completed by jambonz after the say's virtual length."""
    app = node_app("hello")
    result = sim.call(app.url("/hello"), Caller(hangup_after=60), options=OPTIONS)
    assert result.heard == [("say", "Hello from node client ws")]
    assert result.statuses() == ["trying", "in-progress", "completed"]
    assert (result.final_status, result.termination_by, result.duration) == ("completed", "jambonz", 2)
    answered, completed = sent_at(result, "call:status")[1:]
    assert completed - answered == pytest.approx(0.3 + 5 / 2.6, abs=0.05)  # virtual: no real 2 s wait
    events = app.events_after_close()
    assert kinds(events) == ["session:new", "call:status", "call:status", "call:status", "close"]
    assert [e["status"] for e in events if e["event"] == "call:status"] == [
        "trying",
        "in-progress",
        "completed",
    ]
    assert events[0]["call_sid"] == result.call_sid
    assert events[-1]["code"] == 1000


def test_gather_echo_says_back_each_transcript(node_app: Callable[[str], NodeApp]) -> None:
    """Each transcript is said back; the silent third gather says goodbye."""
    app = node_app("gather-echo")
    caller = Caller([Speech("I want a taxi"), Speech("to the airport")], hangup_after=120)
    result = sim.call(app.url("/echo"), caller, options=OPTIONS)
    assert result.said == [
        "Say something",
        "You said: I want a taxi",
        "Anything else?",
        "You said: to the airport",
        "Anything else?",
        "Goodbye",
    ]
    hooks = [m.payload["data"]["reason"] for m in result.messages("sent", "verb:hook")]
    assert hooks == ["speechDetected", "speechDetected", "timeout"]
    assert len(result.messages("received", "ack")) == 4  # session:new + 3 hooks, each by reply()
    assert [e.type for e in result.messages("sim", "ack-timeout")] == []
    assert (result.final_status, result.termination_by) == ("completed", "jambonz")
    assert [e["reason"] for e in app.events_after_close() if e["event"] == "/echo"] == hooks


@pytest.mark.parametrize(
    ("outcome", "b_leg", "heard"),
    [
        (
            DialOutcome("answer", ring=3, talk=20),
            ["trying", "ringing", "in-progress", "completed"],
            "completed",
        ),
        (DialOutcome("busy", ring=2), ["trying", "ringing", "busy"], "busy"),
    ],
)
def test_dial_replies_on_the_dial_result(
    node_app: Callable[[str], NodeApp], outcome: DialOutcome, b_leg: list[str], heard: str
) -> None:
    """The B-leg's statuses come on the parent's socket; the app replies to the actionHook."""
    app = node_app("dial")
    caller = Caller(dial={"+15551234567": outcome}, hangup_after=600)
    result = sim.call(app.url("/dial"), caller, options=OPTIONS)
    assert result.said == ["Connecting you", f"Dial {heard}"]
    statuses = [m.payload for m in result.messages("sent", "call:status")]
    child = [m for m in statuses if m["data"]["call_sid"] != result.call_sid]
    assert [m["data"]["call_status"] for m in child] == b_leg
    assert {m["call_sid"] for m in child} == {result.call_sid}  # top level: the parent
    assert {m["data"]["parent_call_sid"] for m in child} == {result.call_sid}
    assert {m["data"]["to"] for m in child} == {"+15551234567"}
    hook = result.messages("sent", "verb:hook")[0].payload
    assert (hook["hook"], hook["data"]["dial_call_status"]) == ("/dial-result", heard)
    assert result.statuses() == ["trying", "in-progress", "completed"]
    assert result.termination_by == "jambonz"
    events = app.events_after_close()
    seen = [e["status"] for e in events if e["event"] == "call:status" and e["call_sid"] != result.call_sid]
    assert seen == b_leg
    assert [e["dial_call_status"] for e in events if e["event"] == "/dial-result"] == [heard]


def test_forgotten_reply_on_gather_costs_the_ack_timeout(node_app: Callable[[str], NodeApp]) -> None:
    """No reply() on the gather hook: after 1 s jambonz:error + an error call:status; the stack goes on."""
    app = node_app("forgets-reply")
    t0 = time.monotonic()
    result = sim.call(app.url("/forget"), Caller([Speech("hello")], hangup_after=30), options=OPTIONS)
    assert time.monotonic() - t0 >= 1.0
    hook, error = result.messages("sent", "verb:hook")[0], result.messages("sent", "jambonz:error")[0]
    assert error.payload["data"] == {"msg": "invalid actionHook response", "verb": "gather"}
    assert error.t - hook.t >= 1.0
    assert [str(e.note) for e in result.messages("sim", "ack-timeout")] == [
        f"timeout from far end for msgid {hook.msgid}"
    ]
    assert result.said == ["Say something", "Moving on"]
    assert result.statuses() == ["trying", "in-progress", "in-progress", "completed"]
    assert (result.final_status, result.termination_by, result.duration) == ("completed", "caller", 30)
    events = app.events_after_close()
    assert kinds(events)[:5] == ["session:new", "call:status", "call:status", "/echo", "jambonz:error"]
    assert [e.get("error") for e in events if e["event"] == "call:status"] == [
        None,
        None,
        "invalid actionHook response",
        None,
    ]
    assert events[-1]["code"] == 1000
