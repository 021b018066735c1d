"""``jambonz-lab serve`` in a real subprocess, with the examples."""

from __future__ import annotations

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
