"""``jambonz-lab serve`` in a real subprocess, with the examples."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from fakejambonz import FakeJambonz

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(example: str, port: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jambonz_lab.lab.cli",
            "serve",
            str(ROOT / "examples" / example),
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("serving"), line + proc.stderr.read()
    return proc


def stop(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    return proc.returncode, out


def test_serve_hello_then_sigterm_exits_cleanly() -> None:
    port = free_port()
    proc = serve("hello.py", port)
    try:
        with FakeJambonz(f"ws://127.0.0.1:{port}/hello", "cli") as fj:
            msgid = fj.session_new()
            ack = fj.recv()
        assert ack["msgid"] == msgid
        assert [v["verb"] for v in ack["data"]] == ["pause", "say", "hangup"]
        assert "Hello Alice" in ack["data"][1]["text"]
    finally:
        code, out = stop(proc)
    assert code == 0 and "stopped" in out


def test_echo_example_says_back_speech_and_digits() -> None:
    port = free_port()
    proc = serve("echo.py", port)
    try:
        with FakeJambonz(f"ws://127.0.0.1:{port}/echo", "e") as fj:
            fj.session_new()
            assert fj.recv()["data"][0]["verb"] == "gather"
            speech = {"alternatives": [{"transcript": "blue sky", "confidence": 0.9}]}
            fj.hook("/echo", reason="speechDetected", speech=speech)
            assert "You said: blue sky" in fj.recv()["data"][0]["say"]["text"]
            fj.hook("/echo", reason="dtmfDetected", digits="42")
            assert "You pressed 4 2" in fj.recv()["data"][0]["say"]["text"]
            fj.hook("/echo", reason="speechDetected", speech={"alternatives": [{"transcript": "Goodbye"}]})
            assert [v["verb"] for v in fj.recv()["data"]] == ["say", "hangup"]
    finally:
        stop(proc)


def test_serve_refuses_a_file_without_services(tmp_path: Path) -> None:
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    out = subprocess.run(
        [sys.executable, "-m", "jambonz_lab.lab.cli", "serve", str(empty)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "declares no service" in out.stderr


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jambonz_lab.lab.cli", *args], capture_output=True, text=True, timeout=60
    )


def test_call_prints_the_trace_and_exits_0_when_completed() -> None:
    port = free_port()
    proc = serve("echo.py", port)
    try:
        out = cli(
            "call", f"ws://127.0.0.1:{port}/echo", "--speech", "hello", "--dtmf", "7#", "--speech", "goodbye"
        )
    finally:
        stop(proc)
    assert out.returncode == 0, out.stderr
    assert "reason=speechDetected transcript='hello'" in out.stdout
    assert "say: You pressed 7." in out.stdout
    assert "final status: completed (SIP 200)" in out.stdout


def test_call_json_is_one_object_per_line() -> None:
    port = free_port()
    proc = serve("hello.py", port)
    try:
        out = cli("call", f"ws://127.0.0.1:{port}/hello", "--format", "json")
    finally:
        stop(proc)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines[0]["type"] == "session:new" and lines[0]["direction"] == "sent"
    assert {"t", "direction", "type", "msgid", "note", "payload"} <= set(lines[0])


def test_call_to_nothing_exits_1_with_one_line() -> None:
    out = cli("call", "ws://127.0.0.1:9/x#rc=1")
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "cannot connect" in out.stderr


def test_demo_runs_the_bundled_app() -> None:
    out = cli("demo")
    assert out.returncode == 0, out.stderr
    assert "You said: I would like a coffee" in out.stdout
    assert "final status: completed" in out.stdout
