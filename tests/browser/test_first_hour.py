"""The first hour in JupyterLab (issue 18 item 7): notebooks 01 and 02 run as a newcomer runs them.

Each test copies a notebook of ``notebooks/`` (outputs cleared) into the JupyterLab server's root,
opens it, runs all its cells, waits for the kernel to be idle and checks that no cell raised
(JupyterLab's own output models, not the page's text) and that the widgets the notebook shows
render with their DOM contracts: the lab panel (``.jl-panel``, ``.jl-url``, rows
``tr.jl-call[data-call-sid]``), a session card (``.jl-card[data-call-sid]``) and the verb composer
(``.jl-composer`` with its dropdown, fields and ``.jl-validate`` / ``.jl-queue`` / ``.jl-send``
buttons). The final page of each test is ``tests/browser/artifacts/<test>.png`` (conftest.py), the
whole notebook is also saved as ``artifacts/first_hour_<notebook>.png``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.conftest import Notebook

if TYPE_CHECKING:
    from tests.browser.conftest import BrowserPage, JupyterServer

pytestmark = pytest.mark.timeout(240)
ARTIFACTS = Path(__file__).parent / "artifacts"
NOTEBOOKS = Path(__file__).parents[2] / "notebooks"

# Per code cell of the current notebook: its execution count, its error outputs, its stderr text
# (read from JupyterLab's output models, so a traceback cannot hide in a collapsed output).
_JS_OUTCOMES = """
() => {
  const w = window.jupyterapp.shell.currentWidget;
  return w.content.widgets.filter((c) => c.model.type === "code").map((c) => {
    const outputs = c.model.outputs.toJSON();
    return {
      count: c.model.executionCount,
      source: c.model.sharedModel.getSource().slice(0, 60),
      errors: outputs.filter((o) => o.output_type === "error").map((o) => `${o.ename}: ${o.evalue}`),
      stderr: outputs.filter((o) => o.output_type === "stream" && o.name === "stderr")
        .map((o) => [].concat(o.text).join("")).join(""),
    };
  });
}
"""


def open_repo_notebook(jupyter: JupyterServer, bp: BrowserPage, filename: str) -> Notebook:
    """Copy ``notebooks/<filename>`` (outputs cleared) into the server's root and open it."""
    import nbformat

    name = f"first-hour-{filename}"
    nb = Notebook(jupyter, bp, name, [])
    source = nbformat.read(str(NOTEBOOKS / filename), as_version=4)
    for cell in source.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(source, str(jupyter.root / name))
    bp.cleanups.append(lambda: jupyter.shutdown_sessions(name))
    return nb.open()


def run_without_errors(nb: Notebook, timeout: float) -> list[dict[str, object]]:
    """Run All, wait for idle, and check every code cell ran and raised nothing."""
    nb.run_all()
    nb.wait_idle(timeout=timeout)
    outcomes: list[dict[str, object]] = nb.page.evaluate(_JS_OUTCOMES)
    assert outcomes, "no code cells"
    errors = [(o["source"], o["errors"]) for o in outcomes if o["errors"]]
    assert errors == [], errors
    tracebacks = [(o["source"], o["stderr"]) for o in outcomes if "Traceback" in str(o["stderr"])]
    assert tracebacks == [], tracebacks
    not_run = [o["source"] for o in outcomes if not o["count"]]
    assert not_run == [], not_run
    return outcomes


def screenshot(nb: Notebook, stem: str) -> None:
    """The whole notebook as ``artifacts/first_hour_<stem>.png``: the page is made as tall as the
    notebook (every cell is laid out: windowing is off in the harness), then put back."""
    page = nb.page
    before = page.viewport_size
    scroller = nb.root.locator(".jp-WindowedPanel-outer").first  # JupyterLab 4's notebook scroller
    scroller.evaluate("el => el.scrollTo(0, 0)")  # the last cell ran: the notebook is scrolled to it
    tall = scroller.evaluate("el => el.scrollHeight")
    page.set_viewport_size({"width": 1280, "height": min(int(tall) + 200, 16_000)})
    try:
        page.wait_for_function(
            "(id) => { const el = document.querySelector(`#${id} .jp-WindowedPanel-outer`);"
            " return !!el && el.scrollHeight <= el.clientHeight + 2; }",
            arg=nb.panel_id,
            timeout=10_000,
        )
    except Exception:  # noqa: BLE001 - a notebook taller than 16,000 px: the picture is cut, not the test
        pass
    ARTIFACTS.mkdir(exist_ok=True)
    scroller.screenshot(path=str(ARTIFACTS / f"first_hour_{stem}.png"))
    if before is not None:
        page.set_viewport_size(before)


def test_notebook_01_quickstart_runs_and_shows_the_panel(
    jupyter: JupyterServer, browser_page: BrowserPage
) -> None:
    """01-quickstart: every cell runs; the panel shows the URL and the notebook's two calls as
    compact rows; a click on a row opens that call's card below the list."""
    from playwright.sync_api import expect

    nb = open_repo_notebook(jupyter, browser_page, "01-quickstart.ipynb")
    run_without_errors(nb, timeout=120)
    panel = nb.root.locator(".jl-panel")
    expect(panel).to_have_count(1)
    expect(panel.locator(".jl-url")).to_contain_text("ws://127.0.0.1:", timeout=30_000)
    rows = panel.locator("tr.jl-call[data-call-sid]")
    expect(rows).to_have_count(2, timeout=30_000)  # the /hello call and the /quiet call, newest first
    expect(rows.first.locator(".jl-status")).to_have_text("completed", timeout=30_000)
    assert panel.locator(".jl-card").count() == 0  # the panel stays small: no card until asked
    sid = rows.nth(1).get_attribute("data-call-sid")
    assert sid
    rows.nth(1).click()  # the /hello call
    card = panel.locator(f".jl-card[data-call-sid='{sid}']")
    expect(card).to_have_count(1, timeout=30_000)
    expect(card.locator(".jl-status")).to_have_text("completed")
    expect(card.locator(".jl-events li").first).to_be_visible()
    assert "verbs: say, gather" in (card.locator(".jl-verbs").text_content() or "")
    screenshot(nb, "01-quickstart")


def test_notebook_02_live_call_runs_and_shows_card_and_composer(
    jupyter: JupyterServer, browser_page: BrowserPage
) -> None:
    """02-live-call-from-cells: every cell runs (a real-clock call driven from cells); the session's
    card and the verb composer render."""
    from playwright.sync_api import expect

    nb = open_repo_notebook(jupyter, browser_page, "02-live-call-from-cells.ipynb")
    run_without_errors(nb, timeout=150)
    card = nb.root.locator(".jl-card[data-call-sid]")
    expect(card).to_have_count(1, timeout=30_000)
    expect(card.locator(".jl-caller")).to_have_text("Grace")
    expect(card.locator(".jl-status")).to_have_text("completed", timeout=30_000)
    assert card.locator(".jl-events li").count() > 0
    verbs = card.locator(".jl-verbs").text_content() or ""
    assert verbs.startswith("verbs: say") and "gather" in verbs, verbs
    composer = nb.root.locator(".jl-composer")
    expect(composer).to_have_count(1, timeout=30_000)
    expect(composer.locator("select").first).to_have_value("say")
    expect(composer.locator(".jl-fields .jl-field").first).to_be_visible()
    for button in ("jl-validate", "jl-queue", "jl-send"):
        expect(composer.locator(f"button.{button}")).to_be_visible()
    screenshot(nb, "02-live-call-from-cells")


def readme_walk_cells() -> list[str]:
    """The README's Python blocks that run on their own, as a newcomer pastes them: the echo app,
    the simulator, "In JupyterLab" one line a cell, then "Webhook apps and the REST API",
    "Audio", "Voice as data" and "Other platforms" whole. The comment line
    "a call comes in" becomes a call placed on a thread (as the comment says), on the real clock so
    that the cells after it find the call still live."""
    import re

    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    app, simulator = blocks[0], blocks[1]
    (in_lab,) = [b for b in blocks if "next_call = lab.wait_for_session" in b]
    assert '@svc.on("session:new")' in app and "sim.load(" in simulator
    (webhooks,) = [b for b in blocks if 'lab.service("/outbound")' in b]
    (audio,) = [b for b in blocks if 'lab.audio("/audio")' in b]
    (turns,) = [b for b in blocks if "lab.turn_summary()" in b]
    (platforms,) = [b for b in blocks if "KazooSimulator().start()" in b]
    cells = [app, simulator]
    for line in in_lab.splitlines():
        if line.startswith("# ... a call comes in"):
            line = (
                "import threading\n"
                "threading.Thread(target=lab.call, args=('/echo', caller), "
                "kwargs={'clock': 'real'}, daemon=True).start()"
            )
        cells.append(line)
    # then the REST, audio and turns blocks (on the same lab) and the platforms block (a new lab)
    return [*cells, webhooks, audio, turns, platforms]


def test_the_readme_walk_runs_in_jupyterlab(jupyter: JupyterServer, browser_page: BrowserPage) -> None:
    """Issue 18's "done when": the README's code, pasted into JupyterLab cell by cell, runs without an
    error; the panel lists the calls compactly (500 of them after the README's sim.load), the
    awaited session shows its card, the composer renders, and the sources widget shows the three
    simulated platforms."""
    from playwright.sync_api import expect

    name = "first-hour-readme.ipynb"
    nb = Notebook(jupyter, browser_page, name, readme_walk_cells())
    browser_page.cleanups.append(lambda: jupyter.shutdown_sessions(name))
    nb.open()
    run_without_errors(nb, timeout=180)
    panel = nb.root.locator(".jl-panel")
    expect(panel).to_have_count(1)
    expect(panel.locator(".jl-url")).to_contain_text("ws://127.0.0.1:", timeout=30_000)
    expect(panel.locator("tr.jl-call[data-call-sid]").first).to_be_visible(timeout=30_000)
    assert panel.locator(".jl-card").count() == 0  # 502 calls, and still no card in the panel
    card = nb.root.locator(".jl-card[data-call-sid]")
    expect(card).to_have_count(1, timeout=30_000)
    expect(card.locator(".jl-events li").first).to_be_visible()
    expect(nb.root.locator(".jl-composer button.jl-send")).to_be_visible(timeout=30_000)
    sources = nb.root.locator(".jl-sources")
    expect(sources).to_have_count(1, timeout=30_000)
    for platform in ("kazoo", "basix", "wazo"):
        expect(sources).to_contain_text(platform, timeout=30_000)
    screenshot(nb, "readme")
