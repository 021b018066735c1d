"""``jambonz-lab`` in real subprocesses: ``serve`` (with the examples), ``call``, ``demo``,
``simulate`` and ``watch``."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from jambonz_lab.platforms import BasixSimulator, CallScenario, KazooSimulator, WazoSimulator
from jambonz_lab.platforms.kazoo_sim import DEFAULT_ACCOUNT_ID, DEFAULT_AUTH_TOKEN
from tests.fakejambonz import FakeJambonz

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(example: str, port: int, *options: str) -> subprocess.Popen[str]:
    """``jambonz-lab serve examples/<example> --port <port> <options…>``, once it says it serves."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jambonz_lab.lab.cli",
            "serve",
            str(ROOT / "examples" / example),
            "--port",
            str(port),
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
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
    assert out.stdout.rstrip().endswith("# call it with the simulator")  # it ends with what to try next
    assert "jupyter lab notebooks/01-quickstart.ipynb" in out.stdout


# -- simulate / watch: the platform simulators and clients from the shell ------------------------


def jl_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "jambonz_lab.lab.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_simulate_kazoo_prints_where_to_connect_then_stops_on_sigterm() -> None:
    proc = jl_cli("simulate", "kazoo", "--port", "0", "--calls", "3", "--interval", "0", "--time-scale", "0")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("kazoo simulator: blackhole ws://127.0.0.1:"), line
        assert f"auth_token={DEFAULT_AUTH_TOKEN}" in line and f"account_id={DEFAULT_ACCOUNT_ID}" in line
        calls = [proc.stdout.readline() for _ in range(3)]
        assert [c.split(":")[0] for c in calls] == ["call 1/3", "call 2/3", "call 3/3"]
        assert "(seed 1)" in calls[0] and "not answered" in calls[2]  # a mix
    finally:
        code, out = stop(proc)
    assert code == 0 and out.strip().endswith("stopped")


def test_simulate_wazo_names_the_users_and_stops_on_sigint() -> None:
    proc = jl_cli("simulate", "wazo")
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("wazo simulator: http://127.0.0.1:") and "admin/admin-pw" in line, line
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "stopped" in out


def test_watch_kazoo_prints_one_json_line_per_event_and_logs_them(tmp_path: Path) -> None:
    import jambonz_lab as jl

    log = tmp_path / "kazoo.jsonl"
    with KazooSimulator() as sim:
        proc = jl_cli(
            "watch", "kazoo", sim.ws_url, "--token", sim.auth_token, "--account", sim.account_id,
            "--count", "7", "--format", "json", "--log", str(log), "--timeout", "30",
        )  # fmt: skip
        try:
            assert proc.stderr is not None
            ready = proc.stderr.readline()  # printed once subscribed
            assert ready.startswith(f"watching {sim.ws_url}"), ready + proc.stderr.read()
            sim.play(CallScenario(seed=1), time_scale=0).result()
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    types = ["CREATE", "CREATE", "ANSWER", "ANSWER", "BRIDGE", "DESTROY", "DESTROY"]
    assert [e["type"] for e in events] == [f"CHANNEL_{t}" for t in types]
    first = events[0]
    assert first["source"] == "kazoo" and first["call_id"] and first["caller_id_number"] == "+15550100"
    assert {"ts", "event_ts", "account_id", "hangup_cause", "subscribed_key"} <= set(first)
    assert events[-1]["hangup_cause"] == "NORMAL_CLEARING"
    assert sim.auth_token not in out and sim.auth_token not in log.read_text()
    table = jl.read_log(log).platform("kazoo")
    assert list(table["type"]) == [e["type"] for e in events]
    assert list(table["call_id"]) == [e["call_id"] for e in events]


def test_watch_wazo_with_a_bad_token_exits_1_with_one_line() -> None:
    with WazoSimulator() as sim:
        out = cli("watch", "wazo", sim.http_url, "--token", "not-a-token")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "4002" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_watch_kazoo_refused_or_bad_token_exits_1_with_one_line() -> None:
    refused = cli("watch", "kazoo", "ws://127.0.0.1:9/", "--token", "t0k3n-secret", "--account", "a")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "ConnectionRefusedError" in refused.stderr
    with KazooSimulator() as sim:
        bad = cli("watch", "kazoo", sim.ws_url, "--token", "t0k3n-secret", "--account", sim.account_id)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1, bad.stderr
    assert "failed to authenticate token" in bad.stderr and "t0k3n-secret" not in bad.stderr


def test_watch_basix_times_out_with_one_line_when_no_call_comes() -> None:
    with BasixSimulator() as sim:
        out = cli(
            "watch", "basix", sim.ws_url, "--domain", "example", "--token", "secret", "--full-events",
            "--count", "1", "--timeout", "2",
        )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.startswith("watching ")  # it connected; the field specs are no events
    last = out.stderr.splitlines()[1:]
    assert len(last) == 1 and "timeout: 2 s passed without 1 event(s)" in last[0], out.stderr


def test_watch_a_mute_server_names_the_url_and_what_it_waited_for() -> None:
    """Issue 11 item 7: a server that accepts TCP and never answers the upgrade."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        out = cli(
            "watch", "kazoo", f"ws://127.0.0.1:{port}/", "--token", "t", "--account", "a", "--timeout", "1"
        )
    assert out.returncode == 1 and out.stderr.count("\n") == 1, out.stderr
    assert out.stderr == (
        f"jambonz-lab: cannot watch kazoo at ws://127.0.0.1:{port}/: kazoo at "
        f"ws://127.0.0.1:{port}/ did not answer within 1 s: the lab was waiting for the WebSocket opening "
        "handshake\n"
    )
