"""The notebooks' sources, read as JSON (nothing runs): markdown that renders as what it says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_markdown_is_not_indented_into_a_code_block(path: Path) -> None:
    """Four leading spaces make a markdown paragraph a code block: notebook 02's "Push verbs from a
    cell" heading and paragraph rendered as code. Outside fences, no line starts with four spaces."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for n, cell in enumerate(cells):
        if cell["cell_type"] != "markdown":
            continue
        fenced = False
        for line in "".join(cell["source"]).split("\n"):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            assert fenced or not line.startswith("    "), f"{path.name} cell {n}: {line.strip()[:60]!r}"


def test_the_lab_extra_installs_jupyterlab_and_the_readme_says_so() -> None:
    """``pip install .`` has no JupyterLab; the README's JupyterLab steps need ``.[lab]``."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    extras = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert any(req.startswith("jupyterlab") for req in extras["optional-dependencies"]["lab"])
    assert {"ipywidgets", "anywidget"} <= {req.split(">")[0] for req in extras["dependencies"]}
    readme = (root / "README.md").read_text(encoding="utf-8")
    assert "pip install '.[lab]'" in readme
    assert "for sim in" not in readme  # the platforms example must not shadow jambonz_lab.sim
