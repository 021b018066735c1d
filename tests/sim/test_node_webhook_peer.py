"""The simulator against a webhook app written with a library nobody here wrote: ``@jambonz/sdk``.

A session-scoped fixture installs the latest 0.10.x of ``@jambonz/sdk`` and ``express`` 5 (what
the sdk's AGENTS.md has webhook apps install) with npm into a temp dir. The app below is the sdk's
``examples/ivr-menu/app.ts`` in CommonJS: ``WebhookResponse`` from ``@jambonz/sdk/webhook`` on
Express with ``express.json()``, plus a ``/status`` route for the call status hook. It is started
with ``node`` on a free loopback port and killed at teardown; it prints one JSON line per request
it gets (path, method, the payload's key fields, three headers), so a test checks both sides.

With ``WEBHOOK_SECRET`` set the app puts the sdk's own verifier in front of every route,
``WebhookResponse.verifySignature(secret)`` (dist/webhook/index.cjs, ``static verifySignature``):
it HMACs ``JSON.stringify(req.body)``, the *re-serialised parsed* body, not the bytes received.
The app logs that verdict and, beside it, an HMAC-SHA256 of the raw body it computes itself.

The call runs on the virtual clock; every wait on the app (each request's round trip) is real.

Skipped when ``node`` or ``npm`` is missing (CI installs both in ``.ci/run``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jambonz_lab import sim
from jambonz_lab.sim import Caller, DialOutcome, Digits, SimOptions, Speech
from tests.fakejambonz import wait_until
from tests.sim.test_node_peer import _free_port, _listening, pytestmark  # noqa: F401 (skip marker)

PACKAGES = ["@jambonz/sdk@0.10", "express@5"]  # the latest 0.10.x; express as AGENTS.md installs it
SECRET = "whsec-node-peer"
MENU = (
    "Welcome to Acme Corp. Press 1 or say sales for sales. Press 2 or say support for technical "
    "support. Press 3 or say billing for billing."
)
NO_INPUT = "We did not receive any input. Goodbye."  # never heard: see the silence test
SORRY = "Sorry, I didn't understand that."

IVR = r"""
const crypto = require('crypto');
const express = require('express');
const { WebhookResponse } = require('@jambonz/sdk/webhook');

const port = Number(process.argv[2]);
const secret = process.env.WEBHOOK_SECRET || '';
const log = (o) => console.log(JSON.stringify(o));
const app = express();
app.use(express.json({ verify: (req, _res, buf) => { req.rawBody = buf; } }));

app.use((req, _res, next) => {
  const b = req.body || {};
  log({
    event: 'request', path: req.path, method: req.method,
    call_sid: b.call_sid, from: b.from, to: b.to, direction: b.direction, call_status: b.call_status,
    digits: b.digits, reason: b.reason, transcript: b.speech?.alternatives?.[0]?.transcript,
    dial_call_status: b.dial_call_status, parent_call_sid: b.parent_call_sid, has_sip: b.sip !== undefined,
    user_agent: req.get('user-agent'), content_type: req.get('content-type'),
    signed: req.get('jambonz-signature') !== undefined,
  });
  next();
});

if (secret) {
  const sdkVerify = WebhookResponse.verifySignature(secret);
  app.use((req, res, next) => {
    const header = req.get('jambonz-signature') || '';
    const t = (header.match(/(?:^|,)t=(\d+)/) || [])[1];
    const v1 = (header.match(/(?:^|,)v1=([0-9a-f]+)/) || [])[1];
    const raw = crypto.createHmac('sha256', secret).update(`${t}.${req.rawBody || ''}`).digest('hex');
    sdkVerify(req, res, (err) => {
      log({ event: 'signature', path: req.path, sdk_ok: !err, sdk_error: err?.message, raw_ok: raw === v1 });
      if (err) res.status(403).send(err.message);
      else next();
    });
  });
}

const incoming = (_req, res) => {
  const jambonz = new WebhookResponse();
  jambonz
    .gather({
      input: ['speech', 'digits'],
      actionHook: '/menu-selection',
      numDigits: 1,
      timeout: 10,
      say: { text: 'MENU_TEXT' },
    })
    .say({ text: 'We did not receive any input. Goodbye.' })
    .hangup();
  res.json(jambonz);
};
app.post('/incoming', incoming);
app.get('/incoming', incoming);  // a GET calling hook (not in the example)

app.post('/menu-selection', (req, res) => {
  const { digits, speech } = req.body;
  const transcript = speech?.alternatives?.[0]?.transcript?.toLowerCase() || '';
  let department;
  if (digits === '1' || transcript.includes('sales')) department = 'sales';
  else if (digits === '2' || transcript.includes('support')) department = 'support';
  else if (digits === '3' || transcript.includes('billing')) department = 'billing';

  const jambonz = new WebhookResponse();
  if (department) {
    jambonz
      .say({ text: `Connecting you to ${department}. Please hold.` })
      .dial({
        target: [{ type: 'user', name: `${department}-queue` }],
        answerOnBridge: true,
        timeout: 30,
        actionHook: '/dial-result',
      })
      .say({ text: `Sorry, ${department} is not available right now. Please try again later.` })
      .hangup();
  } else {
    jambonz
      .say({ text: "Sorry, I didn't understand that." })
      .redirect({ actionHook: '/incoming' });
  }
  res.json(jambonz);
});

app.post('/dial-result', (_req, res) => {
  const jambonz = new WebhookResponse();
  jambonz.hangup();
  res.json(jambonz);
});

app.post('/status', (_req, res) => res.sendStatus(200));

app.listen(port, '127.0.0.1', () => log({ event: 'listening', port }));
""".replace("MENU_TEXT", MENU)


@pytest.fixture(scope="session")
def sdk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temp dir with @jambonz/sdk and express installed by npm, and the IVR app written there."""
    root = tmp_path_factory.mktemp("jambonz-sdk")
    (root / "package.json").write_text(json.dumps({"name": "sdk-peer-apps", "private": True}))
    proc = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", *PACKAGES],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(f"npm install {' '.join(PACKAGES)} failed:\n{proc.stdout}\n{proc.stderr}")
    (root / "ivr.js").write_text(IVR)
    return root


class WebhookNodeApp:
    """The IVR app in one ``node`` process on ``port``; its stdout is a file of JSON lines."""

    def __init__(self, root: Path, secret: str | None = None) -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.out = root / f"ivr.{self.port}.log"
        env = {"PATH": os.environ.get("PATH", ""), **({"WEBHOOK_SECRET": secret} if secret else {})}
        with self.out.open("w") as out:
            self.proc = subprocess.Popen(
                ["node", "ivr.js", str(self.port)], cwd=root, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + 15
        while not _listening(self.port) and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not _listening(self.port):
            self.stop()
            pytest.fail(f"the node IVR app did not start:\n{self.out.read_text()}")

    def events(self, kind: str) -> list[dict[str, Any]]:
        lines = self.out.read_text().splitlines()
        rows = [json.loads(line) for line in lines if line.startswith("{")]
        return [r for r in rows if r["event"] == kind]

    def requests(self, path: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.events("request") if path is None or r["path"] == path]

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def ivr(sdk_dir: Path) -> Iterator[Callable[..., WebhookNodeApp]]:
    """Start the IVR app (optionally with a webhook secret); every process is killed at teardown."""
    apps: list[WebhookNodeApp] = []

    def start(secret: str | None = None) -> WebhookNodeApp:
        app = WebhookNodeApp(sdk_dir, secret)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.stop()


def test_installed_versions(sdk_dir: Path) -> None:
    """The fixture installed @jambonz/sdk 0.10.x and express 5."""
    modules = sdk_dir / "node_modules"
    assert json.loads((modules / "@jambonz/sdk/package.json").read_text())["version"].startswith("0.10.")
    assert json.loads((modules / "express/package.json").read_text())["version"].startswith("5.")


def test_pressing_2_is_put_through_to_support(ivr: Callable[..., WebhookNodeApp]) -> None:
    """Menu, "2", the dial runs as the caller's outcome says, /dial-result, hangup.

    session:new at the calling hook carries call_sid/from/to/direction (``middleware.js`` ~447–458);
    the gather's relative actionHook goes to the base URL with digits and reason
    (``gather.js`` ~1426, ``http-requestor.js`` ~144); every request is a POST with
    ``user-agent: jambonz`` and ``Content-Type: application/json`` (~118, ~186)."""
    app = ivr()
    caller = Caller([Digits("2")], dial={"support-queue": DialOutcome("answer", ring=3, talk=20)})
    result = sim.call(app.base + "/incoming", caller, from_="+15550001234", to="+15559876543")
    assert result.heard == [("say", MENU), ("say", "Connecting you to support. Please hold.")]
    assert (result.final_status, result.termination_by) == ("completed", "jambonz")
    assert not result.errors
    assert app.paths() == ["/incoming", "/menu-selection", "/dial-result"]
    new, menu, dial = app.requests()
    assert (new["call_sid"], new["from"], new["to"], new["direction"]) == (
        result.call_sid,
        "+15550001234",
        "+15559876543",
        "inbound",
    )
    assert (menu["digits"], menu["reason"], menu["call_sid"]) == ("2", "dtmfDetected", result.call_sid)
    assert dial["dial_call_status"] == "completed"
    for got in app.requests():
        assert (got["method"], got["user_agent"], got["content_type"]) == (
            "POST",
            "jambonz",
            "application/json",
        )
        assert got["signed"] is False  # no webhook secret on the account
    hooks = [m.payload["data"] for m in result.messages("sent", "verb:hook")]
    assert [h.get("dial_call_status") for h in hooks] == [None, "completed"]


def test_a_busy_queue_hears_the_sorry_after_the_dial(ivr: Callable[..., WebhookNodeApp]) -> None:
    """A busy B-leg: /dial-result says busy and its hangup replaces the rest of the stack
    (``task.js`` ~255–258: an actionHook's verbs replace the application)."""
    app = ivr()
    caller = Caller([Speech("billing please")], dial={"billing-queue": DialOutcome("busy", ring=2)})
    result = sim.call(app.base + "/incoming", caller)
    assert result.said == [MENU, "Connecting you to billing. Please hold."]
    [menu] = app.requests("/menu-selection")
    assert (menu["reason"], menu["transcript"]) == ("speechDetected", "billing please")
    assert [r["dial_call_status"] for r in app.requests("/dial-result")] == ["busy"]


def test_unrecognised_speech_is_redirected_to_the_menu(ivr: Callable[..., WebhookNodeApp]) -> None:
    """Sorry, then the redirect verb POSTs session:redirect to /incoming on the base URL
    (``redirect.js`` ~17–50, ``task.js`` ~225); the menu again, and "2" this time."""
    app = ivr()
    result = sim.call(app.base + "/incoming", Caller([Speech("pizza please"), Digits("2")]))
    assert result.said == [MENU, SORRY, MENU, "Connecting you to support. Please hold."]
    assert app.paths() == ["/incoming", "/menu-selection", "/incoming", "/menu-selection", "/dial-result"]
    first, sorry, again, menu, _ = app.requests()
    assert (sorry["reason"], sorry["transcript"]) == ("speechDetected", "pizza please")
    assert (again["method"], again["call_sid"], again["direction"]) == ("POST", result.call_sid, "inbound")
    # the same path, told apart by the payload: session:new carries the INVITE (``sip``, POST only,
    # middleware.js ~447), session:redirect only the call's info (task.js ~227)
    assert (first["has_sip"], again["has_sip"]) == (True, False)
    assert (menu["reason"], menu["digits"]) == ("dtmfDetected", "2")
    assert [m.type for m in result.messages("sent") if m.type.startswith("session:")] == [
        "session:new",
        "session:redirect",
    ]
    assert (result.final_status, result.termination_by) == ("completed", "jambonz")


def test_silence_loops_the_menu_until_the_caller_hangs_up(ivr: Callable[..., WebhookNodeApp]) -> None:
    """The example's "no input" fallback is never heard: on a timeout jambonz still POSTs the
    actionHook with ``reason: timeout`` (``gather.js`` ~1406–1411) and its verbs (sorry + redirect)
    replace the stack, so the fallback after the gather runs only if the hook returns no verbs."""
    app = ivr()
    result = sim.call(app.base + "/incoming", Caller([], hangup_after=60))
    assert NO_INPUT not in result.said
    assert result.said[:4] == [MENU, SORRY, MENU, SORRY]
    reasons = [r["reason"] for r in app.requests("/menu-selection")]
    assert len(reasons) >= 2 and set(reasons) == {"timeout"}
    # not the duration: it counts from the answer, which comes after a real round trip to the app
    assert (result.final_status, result.termination_by) == ("completed", "caller")


def test_the_status_hook_logs_each_call_status(ivr: Callable[..., WebhookNodeApp]) -> None:
    """``status_hook=``: every status by POST to /status, in order, the call's own ending with
    completed (``middleware.js`` ~342–346, ``call-session.js`` ~3141–3147); the B-leg's with its
    ``parent_call_sid``."""
    app = ivr()
    caller = Caller([Digits("2")], dial={"support-queue": DialOutcome("answer", ring=3, talk=20)})
    result = sim.call(app.base + "/incoming", caller, status_hook=app.base + "/status")
    assert result.said == [MENU, "Connecting you to support. Please hold."]

    def own() -> list[dict[str, Any]]:
        return [r for r in app.requests("/status") if r["call_sid"] == result.call_sid]

    wait_until(lambda: "completed" in [r["call_status"] for r in own()], timeout=5)
    assert [r["call_status"] for r in own()] == ["trying", "in-progress", "completed"] == result.statuses()
    child = [r for r in app.requests("/status") if r["call_sid"] != result.call_sid]
    assert [r["call_status"] for r in child] == ["trying", "ringing", "in-progress", "completed"]
    assert {r["parent_call_sid"] for r in child} == {result.call_sid}
    assert {r["method"] for r in app.requests("/status")} == {"POST"}


def test_the_sdks_verifier_accepts_every_signed_request(ivr: Callable[..., WebhookNodeApp]) -> None:
    """``SimOptions(webhook_secret=...)``: each request carries ``Jambonz-Signature``
    (``http-requestor.js`` ~181, ``base-requestor.js`` ~50–66) and both the sdk's
    ``WebhookResponse.verifySignature`` and an HMAC of the raw body accept it."""
    app = ivr(SECRET)
    caller = Caller([Speech("sales")], dial={"*": DialOutcome("no-answer", ring=30)})
    result = sim.call(
        app.base + "/incoming",
        caller,
        options=SimOptions(webhook_secret=SECRET),
        status_hook=app.base + "/status",
    )
    assert result.said[:2] == [MENU, "Connecting you to sales. Please hold."]
    assert not result.errors
    signatures = app.events("signature")
    assert len(signatures) == len(app.requests()) >= 5
    assert [s for s in signatures if not (s["sdk_ok"] and s["raw_ok"])] == []
    assert all(r["signed"] for r in app.requests())


def test_a_wrong_secret_is_refused_by_the_sdks_verifier(ivr: Callable[..., WebhookNodeApp]) -> None:
    """The app's 403 to session:new: jambonz rejects the call (480, ``middleware.js`` ~481–493)."""
    app = ivr(SECRET)
    result = sim.call(app.base + "/incoming", options=SimOptions(webhook_secret="not-the-secret"))
    assert [s["sdk_error"] for s in app.events("signature")] == ["Webhook signature verification failed"]
    assert result.sip_status == 480
    assert result.heard == []


def test_jambonz_lab_call_drives_the_node_ivr(ivr: Callable[..., WebhookNodeApp]) -> None:
    """``jambonz-lab call http://…/incoming --status-hook … --dtmf 2`` in a real subprocess: the
    table names the verbs of each webhook's answer and what the caller heard."""
    app = ivr()
    argv = [sys.executable, "-m", "jambonz_lab.lab.cli", "call", app.base + "/incoming", "--dtmf", "2"]
    argv += ["--status-hook", app.base + "/status"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    table, heard = proc.stdout.split("\ncaller heard:\n", 1)
    answers = [
        line.split("http-response", 1)[1].strip() for line in table.splitlines() if "http-response" in line
    ]
    assert [a for a in answers if a != "(no verbs)"] == [
        "gather, say, hangup",
        "say, dial, say, hangup",
        "hangup",
    ]
    assert heard.splitlines()[:2] == [f"  say: {MENU}", "  say: Connecting you to support. Please hold."]
    assert "final status: completed (SIP 200)" in heard
    wait_until(lambda: "completed" in [r["call_status"] for r in app.requests("/status")], timeout=5)
    assert [r["path"] for r in app.requests() if r["path"] != "/status"] == [
        "/incoming",
        "/menu-selection",
        "/dial-result",
    ]


def test_a_whole_number_float_passes_the_sdks_verifier(ivr: Callable[..., WebhookNodeApp]) -> None:
    """The sdk verifies ``JSON.stringify(req.body)``, the parsed body serialised again, so the body
    must be JSON.stringify's text: a confidence of 1.0 goes out as ``1``, as Node writes it
    (``base-requestor.js`` ~50–53, ``http-requestor.js`` ~191)."""
    app = ivr(SECRET)
    caller = Caller([Speech("pizza", confidence=1.0), Speech("support", confidence=0.5)])
    result = sim.call(app.base + "/incoming", caller, options=SimOptions(webhook_secret=SECRET))
    assert result.said[:3] == [MENU, SORRY, MENU]
    verdicts = [(s["path"], s["sdk_ok"], s["raw_ok"]) for s in app.events("signature")]
    assert verdicts[:3] == [
        ("/incoming", True, True),
        ("/menu-selection", True, True),
        ("/incoming", True, True),
    ]


def test_a_get_calling_hook_cannot_be_verified_by_the_sdk(ivr: Callable[..., WebhookNodeApp]) -> None:
    """jambonz signs the payload of a GET too (``http-requestor.js`` ~181) but sends none of it
    (~191–194), so the sdk's verifier HMACs ``t.undefined`` and refuses: the call is rejected (480,
    ``middleware.js`` ~481–493). Here the simulator and real jambonz agree; the app cannot verify
    a GET hook with ``@jambonz/sdk``. The same app over POST is accepted."""
    app = ivr(SECRET)
    options = SimOptions(webhook_secret=SECRET)
    result = sim.call(app.base + "/incoming", options=options, method="GET")
    [got] = app.requests()
    assert (got["method"], got.get("call_sid"), got["signed"]) == ("GET", None, True)  # no body
    [verdict] = app.events("signature")
    assert (verdict["sdk_ok"], verdict["sdk_error"]) == (False, "Webhook signature verification failed")
    assert (result.sip_status, result.heard) == (480, [])
    ok = sim.call(app.base + "/incoming", Caller([Digits("2")]), options=options)
    assert ok.said[0] == MENU and all(v["sdk_ok"] for v in app.events("signature")[1:])
