"""The session card's level meter in a real JupyterLab, in Debian chromium (harness: ``conftest.py``).

A real-clock simulated call streams a stereo ``listen`` (the caller's 440 Hz tone left, the app's side
silent right) to the lab's own ``lab.audio`` endpoint. The card shows ``.jl-audio[data-state]`` with
one ``.jl-level[data-label]`` per channel: a ``<meter>`` whose value is the dBFS number and the dBFS as
text. Once the app disconnects the stream, the meter says ``ended`` (greyed).
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

SETUP = """\
import threading
import jambonz_lab as jl
from jambonz_lab import sim

lab = jl.start()
audio = lab.audio("/audio")
svc = lab.service("/")

@svc.on("session:new")
def answer(session):
    session.on("/end", lambda msg: session.hangup().reply())
    session.listen(url=lab.url + "/audio", actionHook="/end", mixType="stereo").send()

arrived = lab.wait_for_session()
streaming = audio.wait_for_stream(timeout=60)
caller = sim.Caller(inputs=[sim.Audio(sim.Tone(440, 60.0))], hangup_after=90)
threading.Thread(target=lambda: lab.call("/", caller, clock="real"), daemon=True).start()
"""


def test_the_meter_moves_while_audio_flows_and_greys_when_it_ends(
    notebook: MakeNotebook, browser_page: BrowserPage
) -> None:
    from playwright.sync_api import expect

    nb = notebook(
        [SETUP, "s = arrived.result()\nstream = streaming.result()\njl.card(s)", "stream.disconnect()"]
    )
    nb.run_cell(0)
    nb.run_cell(1)
    meter = nb.root.locator('.jl-card .jl-audio[data-state="flowing"] .jl-level[data-label="caller"] meter')
    meter.wait_for(timeout=30_000)
    page = browser_page.page
    page.wait_for_function(  # sim.Tone's amplitude 0.3: RMS -13.5 dBFS
        "() => { const m = window.jupyterapp.shell.currentWidget.node.querySelector("
        "'.jl-card .jl-level[data-label=\"caller\"] meter'); return !!m && Math.abs(m.value + 13.5) < 1; }",
        timeout=20_000,
        polling=100,
    )
    caller_db = nb.root.locator('.jl-card .jl-level[data-label="caller"] .jl-level-db').text_content() or ""
    assert caller_db.endswith(" dBFS") and abs(float(caller_db.split()[0]) + 13.5) < 1, caller_db
    app = nb.root.locator('.jl-card .jl-level[data-label="app"] meter')
    assert float(app.evaluate("m => m.value")) == -60  # silence sits at the bottom of the scale
    ARTIFACTS.mkdir(exist_ok=True)
    nb.root.locator(".jl-card").screenshot(path=str(ARTIFACTS / "session_card_audio.png"))

    nb.run_cell(2)
    expect(nb.root.locator(".jl-card .jl-audio")).to_have_attribute("data-state", "ended", timeout=20_000)
    ended = nb.root.locator(".jl-card .jl-level .jl-level-db").all_text_contents()
    assert ended == ["ended", "ended"]
    assert nb.root.locator(".jl-card .jl-audio img, .jl-card .jl-audio script").count() == 0
