"""The widgets' browser files: ES modules and stylesheets next to this module, handed to anywidget as paths.

anywidget reads a path's file when the class is defined and, with ``ANYWIDGET_HMR=1`` in a source
checkout, watches it and pushes every save to the open views (hot reload while developing). An
anywidget module cannot import a sibling file, so the helpers every widget uses (``common.js``:
``make``, ``redrawOn``) travel as a synced trait, :func:`common_js`, and each module imports that
text in its ``initialize`` (a Blob URL import, as anywidget loads ``_esm`` itself).

Threads: class-definition time only (import of the widget modules).
"""

from __future__ import annotations

from pathlib import Path

import traitlets

__all__ = ["asset", "common_js"]

HERE = Path(__file__).parent


def asset(name: str) -> Path:
    """The path of a browser file of the widgets (``asset("card.js")``)."""
    path = HERE / name
    if not path.is_file():
        raise FileNotFoundError(f"widget asset {name!r} is missing from {HERE}; reinstall jambonz_lab")
    return path


def common_js() -> traitlets.Unicode[str, str | bytes]:
    """A synced trait holding ``common.js``: give every widget class one (``_common = common_js()``)."""
    return traitlets.Unicode(asset("common.js").read_text(encoding="utf-8")).tag(sync=True)
