// Shared by the widgets' ES modules (card.js, panel.js, sources.js). An anywidget module cannot
// import a sibling file, so this text travels as each widget's `_common` trait (_assets.py) and the
// module imports it in `initialize`.

// An element with a class and a text; the text is set with textContent: caller data stays data.
export function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Draw now, then once per batch of trait changes (one flush changes several traits in one message);
// returns the cleanup anywidget calls when the view goes away.
export function redrawOn(model, traits, update) {
  let pending = false;
  function schedule() {
    if (pending) return;
    pending = true;
    queueMicrotask(() => {
      pending = false;
      update();
    });
  }
  for (const name of traits) model.on(`change:${name}`, schedule);
  update();
  return () => {
    for (const name of traits) model.off(`change:${name}`, schedule);
  };
}

// An event's time, readable: "2.8 ms", "14.92 s", "2:05.3" (clock_text in _model.py)
export function clockText(t) {
  const s = Number(t);
  if (!Number.isFinite(s)) return "";
  if (s === 0) return "0 s";
  if (s < 1) {
    const ms = s * 1000;
    return `${ms.toFixed(ms < 10 ? 2 : ms < 100 ? 1 : 0)} ms`;
  }
  if (s < 60) return `${s.toFixed(2)} s`;
  const minutes = Math.floor(s / 60);
  return `${minutes}:${(s - 60 * minutes).toFixed(1).padStart(4, "0")}`;
}
