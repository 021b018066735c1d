"""The lab panel's compact call list in a real JupyterLab (issue 18 item 2; harness: ``conftest.py``).

DOM contract (``panel.js``): the list ``.jl-panel .jl-calls``, one row per call
``tr.jl-call[data-call-sid]`` (``.jl-status``, ``.jl-caller``, ``.jl-duration``, ``.jl-last``);
a click on a row puts that call's ``.jl-card[data-call-sid]`` below the list (one at a time, the
open row has ``jl-open``); ``button.jl-close-card`` removes it. Screenshots land in
``tests/browser/artifacts/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserPage, Notebook

    MakeNotebook = Callable[[list[str]], Notebook]

pytestmark = pytest.mark.timeout(150)
ARTIFACTS = Path(__file__).parent / "artifacts"
MARKUP_NAME = "<b onmouseover=alert(1)>Eve</b>"

CALLS = f"""\
import jambonz_lab as jl
from jambonz_lab import sim

lab = jl.start()

@lab.service("/").on("session:new")
def answer(session):
    session.say(text="Hello from the list test").hangup().send()

names = ["Ada", "Grace", {MARKUP_NAME!r}, "Linus"]
sids = [lab.call("/", sim.Caller(name=n, hangup_after=30), clock="virtual").call_sid for n in names]
lab
"""


def test_panel_lists_calls_and_a_row_click_opens_its_card(
    notebook: MakeNotebook, browser_page: BrowserPage
) -> None:
    """Four calls: four compact rows, newest first, no card; clicking a row opens its card, clicking
    another replaces it, the close button removes it; the markup caller name stays text."""
    from playwright.sync_api import expect

    nb = notebook([CALLS, "print(' '.join(sids))"])
    nb.run_all()
    nb.wait_idle(timeout=60)
    sids = nb.output_text(1).split()
    assert len(sids) == 4, nb.output_text(1)
    panel = nb.root.locator(".jl-panel")
    rows = panel.locator(".jl-calls tr.jl-call")
    expect(rows).to_have_count(4, timeout=30_000)
    expect(rows.first.locator(".jl-status")).to_have_text("completed", timeout=30_000)
    assert [rows.nth(i).get_attribute("data-call-sid") for i in range(4)] == sids[::-1]  # newest first
    assert [rows.nth(i).locator(".jl-caller").text_content() for i in range(4)] == [
        "Linus",
        MARKUP_NAME,
        "Grace",
        "Ada",
    ]
    assert panel.locator(".jl-calls b").count() == 0  # the name is text, not markup
    durations = [rows.nth(i).locator(".jl-duration").text_content() or "" for i in range(4)]
    assert all(d.endswith((" s", " ms")) for d in durations), durations
    assert not {"0 s", "0.00 s", "0.00 ms"} & set(durations), durations  # call time: the say took seconds
    assert all((rows.nth(i).locator(".jl-last").text_content() or "").startswith("close") for i in range(4))
    assert panel.locator(".jl-card").count() == 0  # no card until a row is clicked
    expect(panel.locator(".jl-opened")).to_be_hidden()

    rows.nth(2).click()  # Grace
    card = panel.locator(".jl-card")
    expect(card).to_have_count(1, timeout=20_000)
    expect(card).to_have_attribute("data-call-sid", sids[1], timeout=20_000)
    expect(card.locator(".jl-caller")).to_have_text("Grace")
    expect(rows.nth(2)).to_have_class("jl-call jl-past jl-open")
    expect(panel.locator(".jl-opened")).to_be_visible()

    rows.nth(1).click()  # the markup name: its card replaces Grace's
    expect(card).to_have_attribute("data-call-sid", sids[2], timeout=20_000)
    expect(card).to_have_count(1)
    expect(card.locator(".jl-caller")).to_have_text(MARKUP_NAME)
    assert card.locator("b").count() == 0
    panel.screenshot(path=str(ARTIFACTS / "panel_call_list.png"))

    panel.locator("button.jl-close-card").click()
    expect(panel.locator(".jl-card")).to_have_count(0, timeout=20_000)
    expect(panel.locator(".jl-opened")).to_be_hidden()
    assert browser_page.dialogs == []


def test_panel_list_is_bounded_and_scrolls(notebook: MakeNotebook) -> None:
    """More calls than the list holds: PANEL_SIZE rows in a box no taller than its max-height, and a
    note that points at ``lab.calls`` for the older ones."""
    from playwright.sync_api import expect

    cells = [
        "import jambonz_lab as jl\nfrom jambonz_lab import sim\n"
        "from jambonz_lab.lab.widgets._hub import PANEL_SIZE\n"
        "lab = jl.start()\n"
        "lab.service('/').on('session:new', lambda s: s.hangup().send())\n"
        "for i in range(PANEL_SIZE + 3):\n"
        "    lab.call('/', sim.Caller(name=f'caller {i}'), clock='virtual')\n"
        "lab",
        "print(PANEL_SIZE, len(lab.calls))",
    ]
    nb = notebook(cells)
    nb.run_all()
    nb.wait_idle(timeout=90)
    size, total = (int(x) for x in nb.output_text(1).split())
    assert total == size + 3
    panel = nb.root.locator(".jl-panel")
    expect(panel.locator("tr.jl-call")).to_have_count(size, timeout=30_000)
    expect(panel.locator(".jl-more")).to_contain_text("3 older call(s)", timeout=30_000)
    box = panel.locator(".jl-calls-scroll").bounding_box()
    assert box is not None and box["height"] <= 210, box  # the list scrolls instead of growing
    assert panel.locator(".jl-calls-scroll").evaluate("el => el.scrollHeight > el.clientHeight")
    assert panel.locator(".jl-card").count() == 0
