"""``jambonz-lab serve`` with credentials from the environment (issue 11 item 4), in a real subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus

from jambonz_lab.lab.cli import _loopback
from tests.fakejambonz import FakeJambonz

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_hello(port: int, auth: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "jambonz_lab.lab.cli", "serve", str(ROOT / "examples" / "hello.py")]
    env = {**os.environ, "JAMBONZ_LAB_AUTH": auth}
    return subprocess.Popen(
        [*cmd, "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_serve_requires_the_credentials_of_the_environment() -> None:
    port = free_port()
    proc = serve_hello(port, "jambonz:s3cret")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("serving"), line
        with pytest.raises(InvalidStatus) as info:
            FakeJambonz(f"ws://127.0.0.1:{port}/hello", "no-creds")
        assert info.value.response.status_code == 401
        with FakeJambonz(f"ws://jambonz:s3cret@127.0.0.1:{port}/hello", "creds") as fj:
            fj.session_new()
            assert fj.recv()["type"] == "ack"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)


def test_serve_refuses_a_malformed_credentials_variable() -> None:
    proc = serve_hello(free_port(), "no-colon-here")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and "JAMBONZ_LAB_AUTH must be username:password" in err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False), ("10.0.0.5", False)],
)
def test_which_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    assert _loopback(host) is loopback
