"""``jambonz-lab simulate jambonz`` in a real subprocess, driven by jambonz_sdk's ``JambonzClient``."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from jambonz_sdk.client import JambonzClient
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from jambonz_lab.sim.payloads import RECOGNIZER, SYNTHESIZER
from tests.wsapp import serving

CALLEE_SCRIPT = """
from jambonz_lab.sim import Caller, DialOutcome
callee = Caller(answer=DialOutcome(ring=0))
"""
SPEECH = {
    "speech_synthesis_vendor": SYNTHESIZER["vendor"],
    "speech_synthesis_language": SYNTHESIZER["language"],
    "speech_synthesis_voice": SYNTHESIZER["voice"],
    "speech_recognizer_vendor": RECOGNIZER["vendor"],
    "speech_recognizer_language": RECOGNIZER["language"],
}


def jl_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jambonz_lab.lab.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def app(ws: ServerConnection) -> None:
    """Acks session:new with a long pause: the call lives until the REST API hangs it up."""
    try:
        async for frame in ws:
            msg = json.loads(frame)
            if msg["type"] == "session:new":
                pause = [{"verb": "pause", "length": 600}]
                await ws.send(json.dumps({"type": "ack", "msgid": msg["msgid"], "data": pause}))
    except ConnectionClosed:
        pass


def test_simulate_jambonz_prints_the_credentials_and_each_call(tmp_path: Path) -> None:
    script = tmp_path / "callee.py"
    script.write_text(CALLEE_SCRIPT)
    account, key = str(uuid.uuid4()), "k-" + uuid.uuid4().hex
    proc = jl_cli(
        "simulate", "jambonz", "--account-sid", account, "--api-key", key, "--calls-from", str(script)
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        assert line.startswith("jambonz simulator: REST API http://127.0.0.1:"), line + proc.stderr.read()
        assert f"account_sid={account}" in line and f"api_key={key}" in line
        found = re.search(r"REST API (http://127\.0\.0\.1:\d+)/v1", line)
        assert found is not None
        base = found.group(1)
        with serving(app, "/outbound") as url:

            async def go() -> str:
                async with JambonzClient(base_url=base, account_sid=account, api_key=key) as client:
                    body = {
                        "from": "+15550100",
                        "to": {"type": "phone", "number": "+15550111"},
                        "call_hook": url,
                    }
                    sid: str = await client.calls.create({**body, **SPEECH})
                    for _ in range(200):
                        if (await client.calls.get(sid))["call_status"] == "in-progress":
                            break
                        await asyncio.sleep(0.05)
                    await client.calls.update(sid, {"call_status": "completed"})
                    return sid

            sid = asyncio.run(go())
            lines = [proc.stdout.readline()]
            while lines[-1] and lines[-1] != f"call {sid}: completed\n":  # one line per status seen
                lines.append(proc.stdout.readline())
            assert lines[0] == f"call {sid}: to +15550111, app {url}\n"
            assert lines[-1] == f"call {sid}: completed\n"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert out == "stopped\n"


def test_simulate_jambonz_refuses_a_script_without_callee(tmp_path: Path) -> None:
    script = tmp_path / "empty.py"
    script.write_text("x = 1\n")
    proc = jl_cli("simulate", "jambonz", "--calls-from", str(script))
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and out == ""
    assert (
        err.strip()
        == f"jambonz-lab: {script} defines no `callee` (a jambonz_lab.sim.Caller or a function of `to`)"
    )
