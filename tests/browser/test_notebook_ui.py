"""The notebook widgets in a real JupyterLab, in Debian chromium (harness: ``conftest.py``).

Each test writes a notebook, runs it in a fresh kernel (this venv's python) and reads the DOM the
widgets promise: the session card (``.jl-card[data-call-sid]`` with ``.jl-status``, ``.jl-caller``,
``button.jl-hangup``, ``button.jl-mute``, ``.jl-events li``) and the lab panel (``.jl-panel``,
``.jl-url``). Calls are simulated on the real clock, from a thread the notebook starts.
Screenshots of every test's final page land in ``tests/browser/artifacts/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserPage, Notebook

    MakeNotebook = Callable[[list[str]], Notebook]

# conftest.py skips this whole module, with the reason, when chromium, playwright, jupyterlab, … are missing
pytestmark = pytest.mark.timeout(150)
ARTIFACTS = Path(__file__).parent / "artifacts"


def setup_cell(caller: str) -> str:
    """Cell 1: a lab whose service answers and keeps the call up; a real-clock call from a thread.

    The session waiter is armed before the call starts, so the next cell cannot miss the session;
    the call's CallResult ends up in ``box["result"]``.
    """
    return f"""\
import threading, time
import jambonz_lab as jl
from jambonz_lab import sim

lab = jl.start()
svc = lab.service("/")

@svc.on("session:new")
def answer(session):
    session.say(text="Hello from the browser test").pause(length=120).send()

arrived = lab.wait_for_session()
box = {{}}

def place_call():
    box["result"] = lab.call("/", caller={caller}, clock="real")

caller_thread = threading.Thread(target=place_call, daemon=True)
caller_thread.start()
"""


CARD = ".jl-card"

# Samples the card's status text every 100 ms in the page, with the time (ms since the epoch), the
# kernel's status and the prompts of cells 2 and 3; one entry per change of any of them but the time.
_JS_WATCH_STATUS = """
() => {
  window.__jlSeen = [];
  const tick = () => {
    const w = window.jupyterapp.shell.currentWidget;
    const el = w.node.querySelector('.jl-card .jl-status');
    const k = w.sessionContext.session && w.sessionContext.session.kernel;
    const prompts = [...w.node.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
      .map((p) => p.textContent.trim());
    const sample = {
      status: el ? el.textContent.trim() : null,
      kernel: k ? k.status : null,
      prompt2: prompts[1] || null,
      prompt3: prompts[2] || null,
    };
    const last = window.__jlSeen[window.__jlSeen.length - 1];
    if (!last || ["status", "kernel", "prompt2", "prompt3"].some((key) => last[key] !== sample[key])) {
      window.__jlSeen.push({...sample, t: Date.now()});
    }
  };
  tick();
  window.__jlTimer = setInterval(tick, 100);
}
"""


def status_is(text: str) -> str:
    """A JS predicate: the status text of the card in the current notebook is ``text``."""
    return (
        "() => { const el = window.jupyterapp.shell.currentWidget.node.querySelector('.jl-card .jl-status'); "
        f"return !!el && el.textContent.trim() === {text!r}; }}"
    )


def test_card_moves_through_statuses_while_a_cell_blocks(
    notebook: MakeNotebook, browser_page: BrowserPage
) -> None:
    """Card updates come from the lab's loop thread: they render while ``time.sleep`` holds the kernel."""
    page = browser_page.page
    nb = notebook(
        [
            setup_cell('sim.Caller(hangup_after=4, name="Ada Lovelace")'),
            "s = arrived.result()\ns",
            "sleep_began = time.time()\ntime.sleep(5)\nsleep_ended = time.time()",
            "print(int(sleep_began * 1000), int(sleep_ended * 1000))",
        ]
    )
    page.evaluate(_JS_WATCH_STATUS)
    nb.run_all()
    page.wait_for_function(status_is("completed"), timeout=30_000, polling=100)
    nb.wait_idle(timeout=30)
    page.evaluate("() => clearInterval(window.__jlTimer)")
    seen: list[dict[str, Any]] = page.evaluate("() => window.__jlSeen")
    began, ended = (int(x) for x in nb.output_text(3).split())
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "status_sequence.json").write_text(
        json.dumps({"sleep_began": began, "sleep_ended": ended, "seen": seen}, indent=1)
    )

    statuses = [s["status"] for s in seen if s["status"]]
    assert "in-progress" in statuses and "completed" in statuses, seen
    assert statuses.index("in-progress") < statuses.index("completed"), seen
    completed = next(s for s in seen if s["status"] == "completed")
    # The card said "completed" while cell 3 was blocked in time.sleep(5): cell 2 done, cell 3 at [*],
    # and the page saw it between the sleep's start and end (same machine clock). JupyterLab's own
    # kernel status is recorded but not relied on: comm traffic during the cell can flip it to idle.
    assert completed["prompt2"] == "[2]:" and completed["prompt3"] == "[*]:", seen
    assert began <= completed["t"] <= ended, (began, ended, seen)
    assert nb.prompt(2) == "[3]:"  # ...and cell 3 did run to its end afterwards
    assert nb.root.locator(CARD).count() == 1
    assert nb.root.locator(CARD).get_attribute("data-call-sid")
    assert nb.root.locator(".jl-card .jl-caller").text_content() == "Ada Lovelace"
    assert nb.root.locator(".jl-card .jl-events li").count() > 0

    nb.root.locator(CARD).screenshot(path=str(ARTIFACTS / "session_card.png"))


def test_hangup_button_ends_the_call(notebook: MakeNotebook, browser_page: BrowserPage) -> None:
    """Clicking Hang up (no cell blocking) ends the call from the app's side: termination by jambonz."""
    from playwright.sync_api import expect

    page = browser_page.page
    nb = notebook(
        [
            setup_cell('sim.Caller(hangup_after=60, name="Grace Hopper")'),
            "s = arrived.result()\njl.card(s)",
            'caller_thread.join(20)\nprint(box["result"].termination_by)',
        ]
    )
    nb.run_cell(0)
    nb.run_cell(1)
    page.wait_for_function(status_is("in-progress"), timeout=30_000, polling=100)
    nb.wait_idle(timeout=30)
    assert nb.prompt(2) == "[ ]:"  # the reading cell has not run yet

    # Mute first: the card's button sends the command and flips to "Unmute"; the call stays up.
    mute = nb.root.locator(".jl-card button.jl-mute")
    mute.click()
    expect(mute).to_have_text("Unmute", timeout=15_000)
    expect(nb.root.locator(".jl-card .jl-status")).to_have_text("in-progress")

    nb.root.locator(".jl-card button.jl-hangup").click()
    page.wait_for_function(status_is("completed"), timeout=20_000, polling=100)
    expect(nb.root.locator(".jl-card button.jl-hangup")).to_be_disabled(timeout=15_000)

    nb.run_cell(2)
    nb.wait_idle(timeout=40)
    assert nb.output_text(2).strip() == "jambonz"


MARKUP_NAME = "<img src=x onerror=alert(1)>"


def test_caller_name_is_text_not_markup(notebook: MakeNotebook, browser_page: BrowserPage) -> None:
    """A caller-controlled name is shown as text: no element made from it, no script run."""
    page = browser_page.page
    nb = notebook(
        [
            setup_cell(f"sim.Caller(hangup_after=60, name={MARKUP_NAME!r})"),
            "s = arrived.result()\njl.card(s)",
            "print(s.call_sid)",
        ]
    )
    nb.run_all()
    nb.root.locator(".jl-card .jl-caller").wait_for(timeout=30_000)
    nb.wait_idle(timeout=30)

    card = nb.root.locator(CARD)
    assert nb.root.locator(".jl-card .jl-caller").text_content() == MARKUP_NAME
    assert MARKUP_NAME in (card.locator(".jl-events").text_content() or "")  # session:new's line
    assert card.get_attribute("data-call-sid") == nb.output_text(2).strip()
    assert card.locator("img").count() == 0
    assert page.locator("img[src='x']").count() == 0
    assert browser_page.dialogs == []


def test_lab_alone_shows_its_panel_with_the_url(notebook: MakeNotebook) -> None:
    """``lab`` as a cell's last expression shows the lab panel, with the URL jambonz should call."""
    nb = notebook(["import jambonz_lab as jl\nlab = jl.start()\nlab", "print(lab.url)"])
    nb.run_all()
    nb.root.locator(".jl-panel .jl-url").wait_for(timeout=30_000)
    nb.wait_idle(timeout=30)
    url = nb.output_text(1).strip()
    assert url.startswith("ws://127.0.0.1:")
    assert url in (nb.root.locator(".jl-panel .jl-url").text_content() or "")
