// Shared by the widgets' ES modules (prepended to card.js, panel.js and sources.js by _card._module:
// anywidget modules have no build step to import from each other).

// An element with a class and a text; the text is set with textContent: caller data stays data.
function make(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

// Draw now, then once per batch of trait changes (one flush changes several traits in one message);
// returns the cleanup anywidget calls when the view goes away.
function redrawOn(model, traits, update) {
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
