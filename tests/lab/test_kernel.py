"""Runs everywhere: a real Jupyter kernel (also one where nest_asyncio was applied), a plain script."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")


CELLS = [
    """
    import threading, time
    import jambonz_lab as jl
    from jambonz_lab import sim
    lab = jl.start()

    @lab.service("/k").on("session:new")
    def new(session):
        session.on("/g", lambda msg: session.say(text="you said " + msg.transcript).hangup().reply())
        session.gather(input=["speech"], actionHook="/g").send()
    """,
    """
    result = lab.call("/k", sim.Caller.saying("kernel"))
    print(result.final_status, result.said)
    """,
    """
    # a plain cell blocks in time.sleep while the lab keeps serving on its own thread
    box = {}
    t = threading.Thread(target=lambda: box.update(r=lab.call("/k", sim.Caller.saying("busy"))))
    t.start(); time.sleep(1.0); t.join(10)
    print(box["r"].final_status)
    """,
    """
    # an async cell: the kernel's loop awaits, the lab's loop matches (waiters first, then the call)
    next_call = lab.wait_for_session("/k", timeout=10)
    caller = sim.Caller(inputs=[sim.Speech("awaited", after=1.0)])
    t = threading.Thread(target=lab.call, args=("/k",), kwargs={"caller": caller, "clock": "real"})
    t.start()
    session = await next_call
    msg = await session.wait_for("/g", timeout=10)
    t.join(10)
    print(msg.transcript)
    """,
    """
    print(len(lab.calls), sorted(set(lab.calls["final_status"])))
    lab.stop()
    """,
]


def run_notebook(cells: list[str]) -> list[str]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells]
    client = nbclient.NotebookClient(nb, timeout=60, kernel_name="python3")
    client.execute()
    outs = []
    for cell in nb.cells:
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert not errors, errors[0]["evalue"] if errors else ""
        outs.append(text.strip())
    return outs


def test_in_a_jupyter_kernel() -> None:
    outs = run_notebook(CELLS)
    assert outs[1] == "completed ['you said kernel']"
    assert outs[2] == "completed"
    assert outs[3] == "awaited"
    assert outs[4] == "3 ['completed']"


def test_in_a_kernel_where_nest_asyncio_was_applied() -> None:
    """jambonz_lab never uses nest_asyncio, but must keep working where a user applied it."""
    pytest.importorskip("nest_asyncio")
    outs = run_notebook(["import nest_asyncio\nnest_asyncio.apply()", *CELLS])
    assert outs[2] == "completed ['you said kernel']"
    assert outs[4] == "awaited"


def test_in_a_plain_script_without_widgets() -> None:
    script = textwrap.dedent(
        """
        import sys
        import jambonz_lab as jl
        from jambonz_lab import sim
        lab = jl.start()
        lab.service("/").on("session:new", lambda s: s.say(text="hi").hangup().send())
        r = lab.call("/", sim.Caller())
        print(r.final_status, r.said, len(lab.events) > 0)
        print("ipywidgets" in sys.modules, "anywidget" in sys.modules, "matplotlib" in sys.modules)
        lab.stop()
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["completed ['hi'] True", "False False False"]
