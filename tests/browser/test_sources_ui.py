"""The platform sources widget in a real JupyterLab, in Debian chromium (harness: ``conftest.py``).

Each test writes a notebook that starts a lab and the Kazoo / Basix / Wazo simulators, watches
them, shows ``jl.sources(lab)`` and plays calls; then it reads the DOM the widget promises
(``sources.js``): the root ``.jl-sources``; ``.jl-connections tr.jl-source[data-source]`` with
``.jl-source-state``; ``.jl-pcalls tr[data-source][data-call-id]`` (``.jl-live`` / ``.jl-past``)
with ``.jl-caller`` and ``.jl-status``; ``.jl-pevents tr.jl-ev[data-source]`` with ``.jl-type``.
Calls are played on the real clock (short ones) while the page watches; the notebook's last cell
stops the lab and the simulators. Screenshots land in ``tests/browser/artifacts/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserPage, Notebook

    MakeNotebook = Callable[[list[str]], Notebook]

# conftest.py skips this whole module, with the reason, when chromium, playwright, jupyterlab, … are missing
pytestmark = pytest.mark.timeout(150)
ARTIFACTS = Path(__file__).parent / "artifacts"
PLATFORMS = ("kazoo", "basix", "wazo")

_WATCH = {
    "kazoo": (
        "lab.kazoo(kazoo.ws_url, auth_token=kazoo.auth_token, account_id=kazoo.account_id, "
        'bindings=["call.*.*"])'
    ),
    "basix": 'lab.basix(basix.ws_url, app_name="lab", domain="example", token="secret", full_events=True)',
    "wazo": 'lab.wazo(wazo.http_url, username="admin", password="admin-pw")',
}
_SIMULATOR = {"kazoo": "KazooSimulator", "basix": "BasixSimulator", "wazo": "WazoSimulator"}


def setup_cell(platforms: tuple[str, ...]) -> str:
    """Cell 1: a lab, the simulators of ``platforms`` (started), each watched; the widget shown last."""
    lines = [
        "import jambonz_lab as jl",
        "from jambonz_lab.platforms import CallScenario, BasixSimulator, KazooSimulator, WazoSimulator",
        "",
        "lab = jl.start()",
    ]
    lines += [f"{name} = {_SIMULATOR[name]}().start()" for name in platforms]
    lines.append(f"sims = [{', '.join(platforms)}]")
    lines += [_WATCH[name] for name in platforms]
    lines.append("jl.sources(lab)")
    return "\n".join(lines) + "\n"


STOP_CELL = 'lab.stop(); [s.stop() for s in sims]\nprint("stopped")'

SOURCES = ".jl-sources"
CONNECTIONS = ".jl-sources .jl-connections tr.jl-source"

# JS predicates, evaluated in the page (scoped to the current notebook panel).
_JS_ROOT = "const root = window.jupyterapp.shell.currentWidget.node;"

_JS_ALL_OPEN = f"""
(sources) => {{
  {_JS_ROOT}
  const rows = [...root.querySelectorAll('{CONNECTIONS}')];
  return rows.length === sources.length && sources.every((s) => rows.some(
    (r) => r.dataset.source === s && r.querySelector('.jl-source-state').textContent.trim() === 'open'));
}}
"""

# Calls live on every platform while every connection still says "open"; returns what it saw.
_JS_LIVE_EVERYWHERE = f"""
(sources) => {{
  {_JS_ROOT}
  const open = ({_JS_ALL_OPEN})(sources);
  const live = sources.map((s) => root.querySelectorAll(
    `.jl-sources .jl-pcalls tr.jl-live[data-source="${{s}}"]`).length);
  if (!open || live.some((n) => n === 0)) return null;
  const title = root.querySelector('.jl-sources .jl-sources-title').textContent;
  const callers = [...root.querySelectorAll('.jl-sources .jl-pcalls tr.jl-live .jl-caller')]
    .map((c) => c.textContent);
  return {{live, title, callers}};
}}
"""

# Every call ended: no live row left, ended rows for every platform.
_JS_ALL_ENDED = f"""
(sources) => {{
  {_JS_ROOT}
  if (root.querySelectorAll('.jl-sources .jl-pcalls tr.jl-live').length) return false;
  return sources.every((s) => root.querySelectorAll(
    `.jl-sources .jl-pcalls tr.jl-past[data-source="${{s}}"]`).length > 0);
}}
"""


def test_sources_widget_shows_three_platforms_live(notebook: MakeNotebook, browser_page: BrowserPage) -> None:
    """Connections, live calls, ended calls and events of Kazoo, Basix and Wazo render as they happen."""
    from playwright.sync_api import expect

    page = browser_page.page
    nb = notebook(
        [
            setup_cell(PLATFORMS),
            # real clock, short calls; play() returns at once (a Waiter), so the cell does too
            "calls = [CallScenario(seed=n, ring=1.0, talk=3.0) for n in range(2)]\n"
            "plays = [sim.play(calls, time_scale=1) for sim in sims]",
            'for p in plays:\n    p.result()\nprint("played")',
            STOP_CELL,
        ]
    )
    nb.run_cell(0)
    nb.root.locator(SOURCES).wait_for(timeout=30_000)
    page.wait_for_function(_JS_ALL_OPEN, arg=list(PLATFORMS), timeout=30_000, polling=100)
    nb.wait_idle(timeout=30)
    assert nb.root.locator(".jl-sources .jl-pcalls tr").count() == 0  # nothing played yet

    nb.run_cell(1)
    # The calls last 4 s: this must be seen while they are up (polled every 50 ms in the page).
    seen = page.wait_for_function(
        _JS_LIVE_EVERYWHERE, arg=list(PLATFORMS), timeout=15_000, polling=50
    ).json_value()
    assert all(n >= 1 for n in seen["live"]), seen
    assert "live calls 0" not in seen["title"], seen
    # the callee may not be known yet (Kazoo's A leg: CHANNEL_CREATE has no callee_id_number)
    assert seen["callers"] and all(c.startswith("+15550100 → ") for c in seen["callers"]), seen
    for name in PLATFORMS:
        row = nb.root.locator(f"{CONNECTIONS}[data-source='{name}']")
        expect(row).to_have_count(1)
        expect(row.locator(".jl-source-state")).to_have_text("open")

    # After the calls end (about 4 s later): no live row, ended rows for every platform.
    page.wait_for_function(_JS_ALL_ENDED, arg=list(PLATFORMS), timeout=20_000, polling=100)
    nb.run_cell(2)
    nb.wait_idle(timeout=30)
    assert nb.output_text(2).strip() == "played"
    expect(nb.root.locator(".jl-sources .jl-sources-title")).to_have_text("platform sources · live calls 0")
    assert nb.root.locator(".jl-sources .jl-pcalls tr.jl-live").count() == 0
    for name in PLATFORMS:
        assert nb.root.locator(f".jl-sources .jl-pcalls tr.jl-past[data-source='{name}']").count() >= 2
        assert nb.root.locator(f".jl-sources .jl-pevents tr.jl-ev[data-source='{name}']").count() > 0
    callers = nb.root.locator(".jl-sources .jl-pcalls tr.jl-past .jl-caller").all_text_contents()
    assert callers and all(c == "+15550100 → 1002" for c in callers), callers
    kazoo_status = nb.root.locator(".jl-sources .jl-pcalls tr.jl-past[data-source='kazoo'] .jl-status")
    assert all(s.startswith("CHANNEL_DESTROY") for s in kazoo_status.all_text_contents())
    types = set(nb.root.locator(".jl-sources .jl-pevents tr.jl-ev .jl-type").all_text_contents())
    assert {"CHANNEL_DESTROY", "channel.removed", "call_ended"} <= types, types
    # the widget stays small (notebook 09 showed 30 calls and 30 events, ~1,000 px): the lists scroll
    for table in ("jl-pcalls", "jl-pevents"):
        box = nb.root.locator(f".jl-sources .jl-scroll:has(> .{table})")
        expect(box).to_have_count(1)
        assert box.evaluate("el => el.clientHeight") <= 200, table
    events_box = nb.root.locator(".jl-sources .jl-scroll:has(> .jl-pevents)")
    assert events_box.evaluate("el => el.scrollHeight > el.clientHeight"), "30 events fit in 200 px?"

    ARTIFACTS.mkdir(exist_ok=True)
    nb.root.locator(SOURCES).screenshot(path=str(ARTIFACTS / "sources_widget.png"))

    nb.run_cell(3)
    nb.wait_idle(timeout=30)
    assert nb.output_text(3).strip() == "stopped"
    for name in PLATFORMS:  # lab.stop() closed the clients: the widget says so
        state = nb.root.locator(f"{CONNECTIONS}[data-source='{name}'] .jl-source-state")
        expect(state).to_have_text("closed", timeout=10_000)


MARKUP_NUMBER = "<img src=x onerror=alert(1)>"


def test_caller_number_is_text_not_markup_in_sources(
    notebook: MakeNotebook, browser_page: BrowserPage
) -> None:
    """A caller-controlled number from a platform is shown as text: no element made from it, no script run."""
    page = browser_page.page
    nb = notebook(
        [
            setup_cell(("kazoo",)),
            f"kazoo.play(CallScenario(seed=7, caller={MARKUP_NUMBER!r}), time_scale=0).result()\n"
            'print("played")',
            STOP_CELL,
        ]
    )
    nb.run_cell(0)
    nb.run_cell(1)
    caller = nb.root.locator(".jl-sources .jl-pcalls tr[data-source='kazoo'] .jl-caller")
    caller.first.wait_for(timeout=30_000)
    page.wait_for_function(
        f"() => {{ {_JS_ROOT} return !root.querySelector('.jl-sources .jl-pcalls tr.jl-live') && "
        "!!root.querySelector('.jl-sources .jl-pcalls tr.jl-past'); }",
        timeout=20_000,
        polling=100,
    )
    nb.wait_idle(timeout=30)
    assert nb.output_text(1).strip() == "played"

    texts = caller.all_text_contents()
    assert texts and all(MARKUP_NUMBER in t for t in texts), texts
    details = nb.root.locator(".jl-sources .jl-pevents tr.jl-ev[data-source='kazoo'] .jl-detail")
    assert any(MARKUP_NUMBER in t for t in details.all_text_contents())
    assert nb.root.locator(".jl-sources img").count() == 0
    assert page.locator("img[src='x']").count() == 0
    assert browser_page.dialogs == []

    nb.run_cell(2)
    nb.wait_idle(timeout=30)
    assert nb.output_text(2).strip() == "stopped"
    assert browser_page.dialogs == []
