"""Browser-test harness: a real JupyterLab server and Debian chromium driven by Python Playwright.

A session fixture starts ``python -m jupyterlab`` on 127.0.0.1 (free port, fixed token, isolated
config/runtime/data dirs under a tmp dir, kernel = this venv's python); a module fixture launches
headless chromium. Missing chromium/playwright/jupyterlab/…: every test here is skipped, with the reason.
Each test gets a fresh browser page; :class:`Notebook` writes a notebook with nbformat, opens it in
JupyterLab and drives it through the app's command registry (``window.jupyterapp``).

Example::

    def test_hello(notebook):
        nb = notebook(["print('hi')"])
        nb.run_all()
        nb.wait_idle()
        assert nb.output_text(0).strip() == "hi"

Threads: everything here runs on pytest's main thread (Playwright's sync API is not thread-safe).
The final page of every test is saved to ``tests/browser/artifacts/<test>.png``
(``<test>-FAILED.png`` when it failed), with the page's console log next to it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

ARTIFACTS = Path(__file__).parent / "artifacts"
TOKEN = "jambonz-lab-browser-tests"
KERNEL_START_TIMEOUT = 60.0
SERVER_START_TIMEOUT = 60.0
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Lab settings for predictable pages: no news toast, every cell laid out (notebook-design B.4).
SETTING_OVERRIDES = {
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}


def chromium_executable() -> str | None:
    """Debian's chromium: ``/usr/bin/chromium`` or ``chromium`` on PATH (None if neither)."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def missing_requirements() -> str | None:
    """Why the browser tests cannot run here, or None when everything they need is installed."""
    import importlib.util

    if chromium_executable() is None:
        return "browser tests need Debian chromium (/usr/bin/chromium or `chromium` on PATH)"
    for module, package in (
        ("playwright", "playwright"),
        ("jupyterlab", "jupyterlab"),
        ("nbformat", "nbformat"),
        ("ipykernel", "ipykernel"),
        ("anywidget", "anywidget"),
    ):
        if importlib.util.find_spec(module) is None:
            return f"browser tests need the python package {package!r} (pip install -e '.[test]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- JupyterLab server -----------------------------------------------------------------------------


@dataclass
class JupyterServer:
    """A running ``jupyter lab``: its base URL, token, notebook root dir and log file."""

    port: int
    root: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    token: str = TOKEN

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
        """Call the server's REST API (``/api/...``) with the token; returns the decoded JSON or None."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.base_url}{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def shutdown_sessions(self, path: str | None = None) -> None:
        """Shut down the kernel sessions (of the notebook at ``path``, or all)."""
        try:
            sessions = self.api("GET", "/api/sessions")
        except (OSError, urllib.error.URLError):
            return
        for s in sessions:
            if path is None or s.get("path") == path:
                try:
                    self.api("DELETE", f"/api/sessions/{s['id']}", timeout=20.0)
                except (OSError, urllib.error.URLError):
                    pass

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _isolated_env(base: Path) -> dict[str, str]:
    """Jupyter config/runtime/data dirs under ``base``; sys.prefix paths (lab extensions) stay visible."""
    env = dict(os.environ)
    dirs = {
        "JUPYTER_CONFIG_DIR": base / "config",
        "JUPYTER_RUNTIME_DIR": base / "runtime",
        "JUPYTER_DATA_DIR": base / "data",
        "IPYTHONDIR": base / "ipython",
        "JUPYTERLAB_SETTINGS_DIR": base / "config" / "lab" / "user-settings",
        "JUPYTERLAB_WORKSPACES_DIR": base / "config" / "lab" / "workspaces",
    }
    for name, path in dirs.items():
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    for name in ("JUPYTER_PATH", "JUPYTER_CONFIG_PATH", "JUPYTER_NO_CONFIG", "JUPYTER_TOKEN"):
        env.pop(name, None)
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    # Lab settings (labconfig/default_setting_overrides.json is read from every jupyter config dir).
    labconfig = dirs["JUPYTER_CONFIG_DIR"] / "labconfig"
    labconfig.mkdir(exist_ok=True)
    (labconfig / "default_setting_overrides.json").write_text(json.dumps(SETTING_OVERRIDES))
    # The kernel is this interpreter (the venv's python, which has ipykernel and jambonz_lab).
    spec_dir = dirs["JUPYTER_DATA_DIR"] / "kernels" / "python3"
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return env


def _start_server(base: Path, root: Path) -> JupyterServer:
    port = _free_port()
    log_path = base / f"jupyter-{port}.log"
    cmd = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        "--port-retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.terminals_enabled=False",
        "--LabApp.expose_app_in_browser=True",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child, closed below
    try:
        process = subprocess.Popen(
            cmd,
            cwd=root,
            env=_isolated_env(base),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()
    server = JupyterServer(port=port, root=root, log_path=log_path, process=process)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            if server.api("GET", "/api/status", timeout=2.0) is not None:
                return server
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            pass
        time.sleep(0.25)
    _stop_server(server)
    raise RuntimeError(f"jupyter lab did not answer /api/status on port {port}:\n{server.log_tail()}")


def _stop_server(server: JupyterServer) -> None:
    """Shut down kernels and the server (SIGTERM, then SIGKILL to its process group)."""
    if server.process.poll() is None:
        server.shutdown_sessions()
        try:
            server.api("POST", "/api/shutdown", timeout=5.0)
        except (OSError, urllib.error.URLError):
            pass
        try:
            server.process.wait(10)
        except subprocess.TimeoutExpired:
            server.process.terminate()
            try:
                server.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.process.pid, signal.SIGKILL)
                server.process.wait(10)
    # a kernel left behind (if any) is in the server's process group
    try:
        os.killpg(server.process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="session")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterServer]:
    """A JupyterLab server for the whole session (skips when requirements are missing)."""
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("jupyter")
    root = base / "notebooks"
    root.mkdir()
    try:
        server = _start_server(base, root)
    except RuntimeError:  # a port taken between probe and bind, or a slow first start: once more
        server = _start_server(base, root)
    try:
        yield server
    finally:
        _stop_server(server)
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(server.log_path, ARTIFACTS / "jupyter-server.log")


@pytest.fixture(scope="module")
def browser(jupyter: JupyterServer) -> Iterator[Browser]:
    """Headless Debian chromium, launched once per test module.

    Module scope, not session: Playwright's sync API keeps an asyncio loop running on the main
    thread while it is open, which would break later tests that call ``asyncio.run``.
    """
    from playwright.sync_api import sync_playwright

    executable = chromium_executable()
    assert executable is not None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# -- per-test page and notebooks -------------------------------------------------------------------


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every test in this directory, with the reason, when chromium or a package is missing."""
    reason = missing_requirements()
    if reason is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Remember each phase's report on the item, so fixtures know whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@dataclass
class BrowserPage:
    """A page plus what it saw: JS dialogs (alert/confirm/prompt) and console lines."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)  # run after the final screenshot


@pytest.fixture
def browser_page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserPage]:
    """A fresh page; its final state is saved as ``artifacts/<test>.png`` (``-FAILED`` on failure)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    bp = BrowserPage(page)

    def on_dialog(dialog: Any) -> None:
        bp.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda msg: bp.console.append(f"{msg.type}: {msg.text}"))
    page.on("pageerror", lambda exc: bp.console.append(f"pageerror: {exc}"))
    try:
        yield bp
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        rep = getattr(request.node, "rep_call", None)
        failed = rep is None or rep.failed
        for stale in ARTIFACTS.glob(f"{request.node.name}[.-]*"):  # an earlier run's, passed or failed
            stale.unlink()
        name = request.node.name + ("-FAILED" if failed else "")
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
        except Exception as exc:  # noqa: BLE001 - a dead page must not hide the test's own error
            bp.console.append(f"screenshot failed: {exc}")
        (ARTIFACTS / f"{name}.console.txt").write_text("\n".join(bp.console) + "\n", errors="replace")
        context.close()
        for cleanup in bp.cleanups:
            cleanup()


_JS_NOTEBOOK = """
() => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  return (w && w.content && w.sessionContext) ? w : null;
}
"""

_JS_KERNEL_STATE = f"""
() => {{
  const w = ({_JS_NOTEBOOK})();
  const k = w && w.sessionContext.session && w.sessionContext.session.kernel;
  return k ? [k.status, k.connectionStatus] : null;
}}
"""


class Notebook:
    """A notebook on disk, open in JupyterLab in ``bp.page``.

    Cells are addressed by index (0-based). Runs go through JupyterLab's own commands,
    fired without waiting for the returned promise (which resolves only after the cells ran).
    """

    def __init__(self, server: JupyterServer, bp: BrowserPage, name: str, cells: list[str]) -> None:
        import nbformat

        self.server, self.bp, self.page, self.name = server, bp, bp.page, name
        self.panel_id = ""
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nbformat.write(nb, str(server.root / name))

    # -- opening ------------------------------------------------------------------------------

    def open(self) -> Notebook:
        """Open the notebook and wait for its kernel to be idle (one reload if the first start stalls)."""
        # a workspace of its own: the tabs of earlier tests are not restored next to this one
        workspace = self.name.removesuffix(".ipynb")
        url = f"{self.server.base_url}/lab/workspaces/{workspace}/tree/{self.name}?token={self.server.token}"
        for attempt in (1, 2):
            self.page.goto(url, wait_until="domcontentloaded", timeout=60_000)
            try:
                self.page.wait_for_function(
                    f"() => {{ const s = ({_JS_KERNEL_STATE})(); return s && s[0] === 'idle' && "
                    "s[1] === 'connected'; }",
                    timeout=KERNEL_START_TIMEOUT * 1000,
                    polling=200,
                )
                self.panel_id = self.page.evaluate(f"() => ({_JS_NOTEBOOK})().id")
                assert self.page.evaluate(f"() => ({_JS_NOTEBOOK})().context.path") == self.name
                self.root.locator(".jp-Cell").first.wait_for(state="visible")
                return self
            except Exception:
                if attempt == 2:
                    raise AssertionError(
                        f"kernel of {self.name} not idle after {KERNEL_START_TIMEOUT:.0f} s\n"
                        f"server log:\n{self.server.log_tail()}"
                    ) from None
                self.server.shutdown_sessions(self.name)
        return self

    # -- running ------------------------------------------------------------------------------

    def _command(self, command: str) -> None:
        self.page.evaluate("(c) => { window.jupyterapp.commands.execute(c); }", command)

    def run_all(self) -> None:
        """Queue every cell ("Run All"); returns at once."""
        self._command("notebook:run-all-cells")

    def run_cell(self, index: int) -> None:
        """Queue cell ``index`` (made the active cell first); returns at once."""
        self.page.evaluate(
            f"(i) => {{ const w = ({_JS_NOTEBOOK})(); w.content.activeCellIndex = i; "
            "window.jupyterapp.commands.execute('notebook:run-cell'); }",
            index,
        )

    def kernel_status(self) -> str | None:
        """The kernel's status as JupyterLab sees it: ``idle``, ``busy``, ``starting``, …"""
        state = self.page.evaluate(_JS_KERNEL_STATE)
        return state[0] if state else None

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait until no cell is queued or running (every prompt numbered) and the kernel is idle."""
        self.page.wait_for_function(
            f"""() => {{
              const s = ({_JS_KERNEL_STATE})();
              const w = ({_JS_NOTEBOOK})();
              const prompts = [...w.node.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
              return s && s[0] === 'idle' && prompts.every(p => !p.textContent.includes('*'));
            }}""",
            timeout=timeout * 1000,
            polling=100,
        )

    # -- reading ------------------------------------------------------------------------------

    @property
    def root(self) -> Locator:
        """This notebook's panel: scope every selector to it."""
        return self.page.locator(f"#{self.panel_id}")

    def cell(self, index: int) -> Locator:
        return self.root.locator(".jp-Notebook .jp-Cell").nth(index)

    def prompt(self, index: int) -> str:
        """The cell's input prompt text, e.g. ``[*]:`` while queued or running, ``[3]:`` after."""
        return self.cell(index).locator(".jp-InputPrompt").first.inner_text().strip()

    def output(self, index: int) -> Locator:
        return self.cell(index).locator(".jp-OutputArea-output")

    def output_text(self, index: int) -> str:
        return "\n".join(self.output(index).all_inner_texts())


@pytest.fixture
def notebook(
    jupyter: JupyterServer, browser_page: BrowserPage, request: pytest.FixtureRequest
) -> Callable[[list[str]], Notebook]:
    """Factory: ``notebook(cells)`` writes ``<test>-N.ipynb`` and opens it.

    Its kernel is shut down after the test's final screenshot.
    """
    count = 0

    def make(cells: list[str]) -> Notebook:
        nonlocal count
        name = f"{request.node.name}-{count}.ipynb".replace("[", "_").replace("]", "_")
        count += 1
        nb = Notebook(jupyter, browser_page, name, cells)
        browser_page.cleanups.append(lambda: jupyter.shutdown_sessions(name))
        return nb.open()

    return make
